//! An error and its causes on one line ("reading x: permission denied"),
//! as `main` prints them and as errors that end in a log line or a reply to
//! the CLI are written. Error messages name the operation and leave the
//! cause to `source()`, so printing only the outer message would lose it.
//!
//! Some errors (aya's among them) also write their cause into their own
//! message: a cause that the message before it already says is left out,
//! or a BTF load failure would name the kernel's answer three times.
use std::error::Error;

pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in anyhow::Chain::new(err) {
        let text = cause.to_string();
        if parts.last().is_some_and(|said| said.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
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

    /// aya's shape: a load error that prints the syscall's error and
    /// returns it as its source, inside an error that prints it again.
    #[derive(Debug, thiserror::Error)]
    #[error("the BPF_BTF_LOAD syscall returned {0}. Verifier output: bad kind")]
    struct Syscall(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("BTF error: {0}")]
    struct Btf(#[from] Syscall);

    #[derive(Debug, thiserror::Error)]
    #[error("loading the eBPF object")]
    struct Load(#[source] Btf);

    #[test]
    fn a_cause_the_message_already_says_is_not_repeated() {
        let e = Load(Btf(Syscall(std::io::Error::from_raw_os_error(22))));
        let line = super::chain(&e);
        assert_eq!(
            line,
            "loading the eBPF object: BTF error: the BPF_BTF_LOAD syscall returned \
             Invalid argument (os error 22). Verifier output: bad kind"
        );
        assert_eq!(line.matches("os error 22").count(), 1, "{line}");
    }

    /// The same through anyhow, as `main` prints an agent that cannot start.
    #[test]
    fn anyhow_errors_too() {
        let e = anyhow::Error::new(Load(Btf(Syscall(std::io::Error::from_raw_os_error(22)))))
            .context("starting the agent");
        let line = super::chain(e.as_ref());
        assert!(line.starts_with("starting the agent: loading the eBPF object: BTF error: "));
        assert_eq!(line.matches("os error 22").count(), 1, "{line}");
    }
}
