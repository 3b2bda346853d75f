//! The `dsh` binary: parse, dispatch, map errors to exit codes.
mod cli;

use std::{io::Write as _, process::ExitCode};

use dsh::untrusted;

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
        Err(err) => {
            // A closed pipe (`dsh agent --events | head`) is not an error.
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            // Errors quote names, paths and the agent's answers.
            eprintln!("dsh: {}", untrusted::text(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}
