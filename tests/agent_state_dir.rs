//! The state dir is root's alone: the agent refuses one another user owns
//! or may write to, follows no symbolic link there, keeps its files 0600,
//! and the CLI talks to no socket root does not own.
use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use crate::agentkit::{Agent, dsh_bin};

/// A fresh scratch dir for `tag`, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("dsh-it-sd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `dsh --state-dir DIR ARGS`: exit code and stderr.
fn dsh(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("running dsh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_agent_refuses_a_state_dir_that_is_not_roots_alone() {
    let scratch = Scratch::new("refuse");
    let owned = scratch.0.join("owned");
    std::fs::create_dir(&owned).expect("mkdir");
    std::os::unix::fs::chown(&owned, Some(65534), Some(65534)).expect("chown");
    let (code, err) = dsh(&owned, &["agent"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is owned by uid 65534, not root"), "{err}");

    let open = scratch.0.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, err) = dsh(&open, &["agent"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("may be written by group or others (mode 0777)"),
        "{err}"
    );
    // Nothing was made in either.
    for d in [&owned, &open] {
        assert_eq!(
            std::fs::read_dir(d).expect("read").count(),
            0,
            "{}",
            d.display()
        );
    }

    let real = scratch.0.join("real");
    std::fs::create_dir(&real).expect("mkdir");
    let link = scratch.0.join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let (code, err) = dsh(&link, &["agent"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&real).expect("read").count(), 0);
}

#[test]
fn the_journal_is_roots_alone_and_no_link_is_followed() {
    let scratch = Scratch::new("nofollow");
    let precious = scratch.0.join("precious");
    std::fs::write(&precious, "not a journal\n").expect("write");
    let state = scratch.0.join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::os::unix::fs::symlink(&precious, state.join("journal.redb")).expect("symlink");

    let agent = Agent::start(&state, &[]);
    assert_eq!(
        std::fs::read_to_string(&precious).expect("read"),
        "not a journal\n",
        "the link's target is untouched"
    );
    let status = agent.status();
    let moved = status["journal"]["moved_aside"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("the link is moved aside: {status}"));
    let aside = std::fs::symlink_metadata(moved).expect("moved aside");
    assert!(aside.file_type().is_symlink(), "the link itself was moved");
    assert_eq!(status["journal"]["writable"], true, "{status}");

    let mode = |name: &str| {
        let m = std::fs::symlink_metadata(state.join(name)).expect(name);
        (m.file_type().is_symlink(), m.uid(), m.mode() & 0o777)
    };
    assert_eq!(mode("journal.redb"), (false, 0, 0o600));
    assert_eq!(mode("dsh.sock"), (false, 0, 0o600));
    let dir = std::fs::metadata(&state).expect("state dir");
    assert_eq!(dir.mode() & 0o777, 0o700, "closed to everyone else");
}

#[test]
fn the_cli_talks_to_no_socket_root_does_not_own() {
    let scratch = Scratch::new("socket");
    let socket = scratch.0.join("dsh.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::os::unix::fs::chown(&socket, Some(65534), Some(65534)).expect("chown");
    let (code, err) = dsh(&scratch.0, &["ps"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is owned by uid 65534, not root: it is not the dsh agent's socket"),
        "{err}"
    );

    // A link to a socket root owns is refused too.
    let other = Scratch::new("socket-link");
    std::os::unix::fs::chown(&socket, Some(0), Some(0)).expect("chown back");
    std::os::unix::fs::symlink(&socket, other.0.join("dsh.sock")).expect("symlink");
    let (code, err) = dsh(&other.0, &["ps"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is a symbolic link, not the dsh agent's socket"),
        "{err}"
    );

    // A dir others may write to: its socket could be anyone's.
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, err) = dsh(&scratch.0, &["ps"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("may be written by group or others"), "{err}");
}
