//! `cargo xtask`: every step that is not plain cargo. Each command first
//! bootstraps what is missing (rust-src, bpf-linker), so a fresh machine
//! needs nothing installed by hand.
mod bench;
mod bootstrap;
mod cargo_build;
mod cmd;
mod docker;
mod fuzz;
mod host;
mod man;
mod peers;
mod run;
mod runtimes;
mod test;
mod vm;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the build and the fuzzing need (rust-src, bpf-linker,
    /// cargo-fuzz); idempotent.
    Bootstrap,
    /// Build the kernel programs and the dsh binary.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build and run dsh (as root) with the given arguments.
    Run {
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// fmt, clippy, unit tests, every fuzz target briefly, every privileged
    /// integration test, the quick benchmark and the VM matrix.
    Test {
        /// Run only these phases (comma-separated), e.g. `--only unit` or
        /// `--only integration -- agent_plain`.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<test::Phase>,
        /// Leave these phases out (comma-separated), e.g. `--skip fuzz,vm`.
        #[arg(long, value_enum, value_delimiter = ',')]
        skip: Vec<test::Phase>,
        /// Filter passed to the integration test binary; a filtered run
        /// leaves out the benchmark and the VMs unless `--only` names them.
        #[arg(last = true)]
        filter: Vec<String>,
    },
    /// Run every fuzz target (or the ones named) for a while each.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Targets to run (all when none is named).
        targets: Vec<String>,
    },
    /// Measure dsh's cost (release build).
    Bench {
        /// A smaller run, under a minute.
        #[arg(long)]
        quick: bool,
        /// Only the scale section (idle containers by the hundred).
        #[arg(long)]
        scale_only: bool,
    },
    /// The privileged tests that need no Docker, in VMs booting Debian's
    /// 5.10, 6.1 and 6.12 kernels under each cgroup layout (qemu).
    VmTest(vm::VmArgs),
    /// Man pages and shell completions into target/man, target/completions.
    Man,
    /// Start dockerd and import the test image, if needed.
    #[command(hide = true)]
    DockerUp,
    /// Start the tests' containerd and podman service, if needed.
    #[command(hide = true)]
    RuntimesUp,
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

fn main() -> std::process::ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bootstrap => {
            bootstrap::run()?;
            bootstrap::ensure_cargo_fuzz().map(drop)
        }
        Command::Build { release } => cargo_build::build(release).map(drop),
        Command::Run { release, args } => run::run(release, &args),
        Command::Test { only, skip, filter } => test::test(&test::Selection { only, skip, filter }),
        Command::Fuzz { secs, targets } => fuzz::run(secs, &targets, fuzz::Build::Optimised),
        Command::Bench { quick, scale_only } => bench::run(quick, scale_only),
        Command::VmTest(args) => vm::run(&args),
        Command::Man => man::run(),
        Command::DockerUp => {
            bootstrap::require_root()?;
            docker::ensure_engine()
        }
        Command::RuntimesUp => {
            bootstrap::require_root()?;
            runtimes::ensure()
        }
    }
}
