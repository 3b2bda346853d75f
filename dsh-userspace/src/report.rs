//! An error and its causes on one line ("reading x: permission denied"),
//! as `main` prints them: for errors that end in a log line or a reply to
//! the CLI instead. Error messages name the operation and leave the cause
//! to `source()`, so printing only the outer message would lose it.
use std::error::Error;

pub fn chain(err: &(dyn Error + 'static)) -> String {
    anyhow::Chain::new(err)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading /x")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_once() {
        let e = Outer(std::io::Error::from_raw_os_error(13));
        assert_eq!(
            super::chain(&e),
            "reading /x: Permission denied (os error 13)"
        );
    }
}
