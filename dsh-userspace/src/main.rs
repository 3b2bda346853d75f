//! The `dsh` binary: parse, dispatch, map errors to exit codes.
mod cli;

use std::{
    io::{self, Write as _},
    process::ExitCode,
};

use dsh::{report::chain, untrusted};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        // The agent logs names, paths and errors that containers control.
        .format(|buf, record| {
            let msg = record.args().to_string();
            writeln!(
                buf,
                "[{:<5} {}] {}",
                record.level(),
                record.target(),
                untrusted::text(&msg)
            )
        })
        .init();
    match cli::run() {
        Ok(code) => code,
        // A closed pipe (`dsh log --json | head -1`) is not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Errors quote names, paths and the agent's answers; `chain`
            // says a cause once where a message already includes it.
            eprintln!("dsh: {}", untrusted::text(&chain(err.as_ref())));
            ExitCode::FAILURE
        }
    }
}

/// Whether any error in the chain is a write to a closed pipe, however deep
/// it is wrapped (ripgrep's `main` does the same). serde_json's error does
/// not hand out the I/O error it wraps as its source, only its kind.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .map(io::Error::kind)
            .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind())
            == Some(io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write as _};

    use super::is_broken_pipe;

    /// A writer whose reader has gone.
    struct ClosedPipe;

    impl io::Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn broken_pipes_are_found_however_wrapped() {
        let json = serde_json::to_writer(ClosedPipe, &[1, 2]).unwrap_err();
        assert!(is_broken_pipe(&anyhow::Error::new(json)));
        let io = ClosedPipe.write_all(b"x").unwrap_err();
        let wrapped = anyhow::Error::new(io).context("writing the table");
        assert!(is_broken_pipe(&wrapped.context("dsh ps")));
        let other = anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound));
        assert!(!is_broken_pipe(&other));
    }
}
