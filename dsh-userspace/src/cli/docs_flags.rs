//! The docs cannot drift from the flags: every `--flag` the README, the
//! contributing guide and docs/ name in a `dsh ...` command, or alone, is one
//! `dsh` accepts (`cargo xtask ...` commands are checked by xtask's own test).
use std::collections::{BTreeMap, BTreeSet};

use clap::CommandFactory as _;

use super::Cli;

/// Flags of other tools the docs name on their own (docker's, cargo's and
/// xtask's); every other lone `--flag` must be dsh's.
const OTHER_TOOLS: &[&str] = &[
    "--all-targets",
    "--lib",
    "--test-threads",
    "--memory",
    "--pids-limit",
    "--ulimit",
    "--restart",
    "--network",
    "--user",
    "--cap-drop",
    "--name",
    "--only",
    "--skip",
    "--kernel",
    "--layout",
    "--test",
    "--jobs",
    "--release",
    "--quick",
    "--scale-only",
    "--secs",
    "--timeout",
    "--userns",
];

/// Long flags by subcommand ("" for the top level, global ones included).
fn dsh_flags() -> BTreeMap<String, BTreeSet<String>> {
    let cmd = Cli::command();
    let longs = |c: &clap::Command| -> BTreeSet<String> {
        c.get_arguments()
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .chain(["--help".to_owned(), "--version".to_owned()])
            .collect()
    };
    let top = longs(&cmd);
    let mut out = BTreeMap::from([(String::new(), top.clone())]);
    for sub in cmd.get_subcommands() {
        out.insert(sub.get_name().to_owned(), &longs(sub) | &top);
    }
    out
}

/// The `--words` of a piece of text (not `--` alone).
fn flags_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'-');
        let name_len = text[start + 2..]
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            .count();
        if before_ok && name_len > 0 && bytes[start + 2].is_ascii_lowercase() {
            out.push(
                text[start..start + 2 + name_len]
                    .trim_end_matches('-')
                    .to_owned(),
            );
        }
        i = start + 2 + name_len;
    }
    out
}

/// Code in a Markdown text: each fenced line, and each inline span.
fn code_in(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push(line.trim().to_owned());
        } else {
            out.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    out
}

/// Every flag `code` misnames, given dsh's flags.
fn unknown_flags(code: &str, flags: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let code = code.trim_start_matches("$ ").trim_start_matches("sudo ");
    let all: BTreeSet<&String> = flags.values().flatten().collect();
    // What follows ` -- ` is the command dsh runs, with flags of its own.
    let code = code.split(" -- ").next().unwrap_or(code);
    if let Some(rest) = code.strip_prefix("dsh ") {
        let sub = rest.split_whitespace().find(|w| !w.starts_with('-'));
        let known = sub.and_then(|s| flags.get(s));
        flags_in(code)
            .into_iter()
            .filter(|f| match known {
                Some(k) => !k.contains(f),
                None => !all.contains(f),
            })
            .collect()
    } else if code.starts_with("--") {
        flags_in(code)
            .into_iter()
            .take(1)
            .filter(|f| !all.contains(f) && !OTHER_TOOLS.contains(&f.as_str()))
            .collect()
    } else {
        Vec::new()
    }
}

#[test]
fn every_flag_the_docs_name_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pages = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let flags = dsh_flags();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        for code in code_in(&text) {
            checked += flags_in(&code).len();
            for f in unknown_flags(&code, &flags) {
                wrong.push(format!("{}: {f} in `{code}`", page.display()));
            }
        }
    }
    assert!(checked > 40, "only {checked} flags found in {pages:?}");
    assert!(
        wrong.is_empty(),
        "flags dsh does not have:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_renamed_flag_is_caught() {
    let flags = dsh_flags();
    assert!(unknown_flags("dsh ps --wide --no-headers", &flags).is_empty());
    assert_eq!(unknown_flags("dsh ps --widest", &flags), ["--widest"]);
    // A flag of another command is not one of this command's.
    assert_eq!(unknown_flags("dsh ps --follow", &flags), ["--follow"]);
    assert_eq!(unknown_flags("--print-events", &flags), ["--print-events"]);
    assert!(unknown_flags("dsh exec web --host-tools -- ls --color", &flags).is_empty());
    assert!(unknown_flags("--state-dir /x", &flags).is_empty());
}
