//! The journal's errors, and which of them mean a full disk, a failed file
//! redb must re-open, or a damaged file to move aside.

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {op}")]
    Db {
        op: &'static str,
        #[source]
        source: redb::Error,
    },
    #[error("journal: {what} is damaged")]
    Block {
        what: &'static str,
        #[source]
        source: super::block::BlockError,
    },
    #[error("journal: encoding {what}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("journal: container record {what} is damaged")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub(super) fn db<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> JournalError {
    move |e| JournalError::Db {
        op,
        source: e.into(),
    }
}

impl JournalError {
    fn redb(&self) -> Option<&redb::Error> {
        match self {
            JournalError::Db { source, .. } => Some(source),
            _ => None,
        }
    }

    /// redb refuses every later operation after an I/O error, until the
    /// database is opened again.
    pub(super) fn needs_reopen(&self) -> bool {
        matches!(
            self.redb(),
            Some(redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed)
        )
    }

    pub(super) fn is_no_space(&self) -> bool {
        matches!(self.redb(), Some(redb::Error::Io(e))
            if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
    }

    /// The file itself is bad (as opposed to the disk or the moment).
    pub(super) fn is_damage(&self) -> bool {
        match self {
            JournalError::Block { .. } | JournalError::Decode { .. } => true,
            JournalError::Encode { .. } => false,
            JournalError::Db { source, .. } => {
                matches!(
                    source,
                    redb::Error::Corrupted(_)
                        | redb::Error::UpgradeRequired(_)
                        | redb::Error::RepairAborted
                        | redb::Error::TableTypeMismatch { .. }
                        | redb::Error::TypeDefinitionChanged { .. }
                        | redb::Error::TableIsMultimap(_)
                ) || matches!(source, redb::Error::Io(e)
                    if matches!(e.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof)
                        // A symbolic link where the journal goes (opened
                        // with O_NOFOLLOW): moved aside, never written through.
                        || e.raw_os_error() == Some(libc::ELOOP))
            }
        }
    }
}
