//! `dsh completions` and `dsh man`, generated as users and packagers would:
//! the scripts parse, the pages render, and both know every command.
use std::process::Command;

use crate::agentkit::dsh_bin;

/// The visible subcommands, from `dsh --help`.
fn commands() -> Vec<String> {
    let out = Command::new(dsh_bin())
        .arg("--help")
        .output()
        .expect("dsh --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let list: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .expect("a command list")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(
        list.iter().any(|c| c == "ps") && list.iter().any(|c| c == "agent"),
        "{list:?}"
    );
    list
}

fn run(args: &[&str]) -> String {
    let out = Command::new(dsh_bin()).args(args).output().expect("dsh");
    assert!(
        out.status.success(),
        "dsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn completions_for_bash_zsh_and_fish_know_every_command() {
    let commands = commands();
    for (shell, marker) in [
        ("bash", "complete -F _dsh"),
        ("zsh", "#compdef dsh"),
        ("fish", "complete -c dsh"),
    ] {
        let script = run(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell} completion lacks {c}");
        }
        for flag in [
            "prometheus",
            "metrics-addr",
            "node-name",
            "no-headers",
            "filter",
        ] {
            assert!(script.contains(flag), "{shell} completion lacks --{flag}");
        }
    }
    // bash itself parses its script, and completes `dsh p` to `ps`.
    let script = run(&["completions", "bash"]);
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{script}\nCOMP_WORDS=(dsh p); COMP_CWORD=1; _dsh dsh p dsh; echo \"${{COMPREPLY[@]}}\""
        ))
        .output()
        .expect("bash");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let offered = String::from_utf8_lossy(&check.stdout);
    assert_eq!(
        offered.split_whitespace().collect::<Vec<_>>(),
        ["ps"],
        "{offered}"
    );
    let bad = Command::new(dsh_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn man_pages_render_for_dsh_and_every_command() {
    let dir = std::env::temp_dir().join(format!("dsh-it-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run(&["man", "--dir", dir.to_str().unwrap()]);
    let mut pages = vec!["dsh.1".to_owned()];
    pages.extend(commands().iter().map(|c| format!("dsh-{c}.1")));
    for page in &pages {
        let path = dir.join(page);
        let roff = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            roff.starts_with(".ie \\n(.g .ds Aq") || roff.contains(".TH "),
            "{page}"
        );
        // groff with every warning on: the page must render cleanly.
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let agent = std::fs::read_to_string(dir.join("dsh-agent.1")).unwrap();
    assert!(
        agent.contains("metrics\\-addr"),
        "dsh-agent.1 documents --metrics-addr"
    );
    assert_eq!(
        run(&["man"]),
        std::fs::read_to_string(dir.join("dsh.1")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
