//! One line of a container's history: a state change or a notable event.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{cause::Message, state::State};

/// The journal stores kinds by position: add new kinds at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    Create,
    Start,
    Exit,
    Oom,
    Signal,
    Coredump,
    Destroy,
    Exec,
    /// A summary of short-lived processes (added last: kinds may be stored
    /// by position).
    Churn,
    /// A running-but-failing condition started or ended (added last).
    Health,
}

impl LogKind {
    pub const ALL: [LogKind; 10] = [
        LogKind::Create,
        LogKind::Start,
        LogKind::Exit,
        LogKind::Oom,
        LogKind::Signal,
        LogKind::Coredump,
        LogKind::Destroy,
        LogKind::Exec,
        LogKind::Churn,
        LogKind::Health,
    ];

    /// The name `dsh log` prints and `--json` carries (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Create => "create",
            LogKind::Start => "start",
            LogKind::Exit => "exit",
            LogKind::Oom => "oom",
            LogKind::Signal => "signal",
            LogKind::Coredump => "coredump",
            LogKind::Destroy => "destroy",
            LogKind::Exec => "exec",
            LogKind::Churn => "churn",
            LogKind::Health => "health",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the journal (assigned when appended; strictly increasing).
    #[serde(default)]
    pub seq: u64,
    pub ts: Timestamp,
    /// The container's stable key (its runtime id).
    pub key: String,
    /// The container's name when this happened.
    pub id: String,
    pub kind: LogKind,
    /// Both set for a state change; both None for other events.
    pub from: Option<State>,
    pub to: Option<State>,
    /// What happened, typed; `render::log` writes it as the contract's text.
    pub msg: Message,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub core_dumped: Option<bool>,
    /// On disk; false while the agent holds the line in memory because the
    /// journal cannot take it yet (disk full, I/O error).
    #[serde(default = "durable_default")]
    pub durable: bool,
}

fn durable_default() -> bool {
    true
}

/// How long the journal keeps a line: critical lines (state changes and
/// the events that explain them) for the retention period whatever else
/// happens; chatty ones within a count and byte budget, evicted first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogClass {
    Critical,
    Chatty,
}

impl LogEntry {
    pub fn new(ts: Timestamp, key: &str, id: &str, kind: LogKind, msg: Message) -> Self {
        Self {
            seq: 0,
            ts,
            key: key.to_owned(),
            id: id.to_owned(),
            kind,
            from: None,
            to: None,
            msg,
            pid: None,
            comm: None,
            signal: None,
            exit_code: None,
            core_dumped: None,
            durable: true,
        }
    }

    /// Which retention rule applies. Every new kind must choose here.
    pub fn class(&self) -> LogClass {
        if self.is_state_change() {
            return LogClass::Critical;
        }
        // Signals from outside summed over an interval are chatty: one that
        // ends the main process is told by its exit line, which is critical.
        if matches!(
            self.msg,
            Message::SignalsReceived(_) | Message::OtherSignalsReceived(_)
        ) {
            return LogClass::Chatty;
        }
        match self.kind {
            LogKind::Create
            | LogKind::Start
            | LogKind::Exit
            | LogKind::Oom
            | LogKind::Signal
            | LogKind::Coredump
            | LogKind::Destroy
            // One line per start or end of a condition, not per event.
            | LogKind::Health => LogClass::Critical,
            LogKind::Exec | LogKind::Churn => LogClass::Chatty,
        }
    }

    /// A state change (shown by `dsh log` without `-a`).
    pub fn is_state_change(&self) -> bool {
        self.to.is_some()
    }

    pub fn with_task(mut self, pid: u32, comm: &str) -> Self {
        self.pid = Some(pid);
        self.comm = Some(comm.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::LogKind;

    #[test]
    fn kind_names_are_the_serde_names() {
        for k in LogKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str(), "{k:?}");
        }
    }
}
