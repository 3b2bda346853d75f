//! The `dsh` binary: parse, dispatch, map errors to exit codes.
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`dsh agent --events | head`) is not an error.
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("dsh: {err:#}");
            ExitCode::FAILURE
        }
    }
}
