//! The import direction, checked: every `crate::`, `super::` and `self::`
//! path in the library's sources (use lines, expressions, macro arguments)
//! may only name a module of a lower layer than its own, and no two modules
//! import each other.
//!
//! Data flows kernel → probe → agent → model → journal → api → render. In
//! imports the agent is the loop that joins probe, cgroup and runtime into
//! the model, journal and socket (docs/architecture.md), so it sits above
//! every stage it drives; nothing imports the agent. Leaves (units, clock,
//! signal) import nothing from dsh; `dsh_ebpf` (the kernel's types) is
//! below everything. `cli` (the binary) is above everything.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Top-level module → layer. A module may import modules of lower layers
/// only; two modules of one layer may not import each other.
///
/// | layer | modules          | what they are                                    |
/// |-------|------------------|--------------------------------------------------|
/// | 0     | units, clock, signal, report, fds | leaves: formatting, boot clock, signals and exit statuses, error chains, descriptors |
/// | 1     | cgroup, runtime  | host facts: mount layout, cgroup files and ids; runtime metadata |
/// | 2     | probe, enter     | the kernel side (programs, maps, events); entering a container |
/// | 3     | model, trace     | the containers' state machine; the trace report  |
/// | 4     | journal          | the durable log of the model's lines             |
/// | 5     | api, metrics     | the socket protocol between agent and CLI; the Prometheus view of the model |
/// | 6     | agent, render    | the loop that drives 1–5; all human text         |
/// | (7)   | cli              | the binary: parses, calls api or agent, renders  |
const LAYERS: &[(&str, u8)] = &[
    ("units", 0),
    ("clock", 0),
    ("signal", 0),
    ("report", 0),
    ("untrusted", 0),
    ("fds", 0),
    ("cgroup", 1),
    ("runtime", 1),
    ("probe", 2),
    ("enter", 2),
    ("model", 3),
    ("trace", 3),
    ("journal", 4),
    ("api", 5),
    ("metrics", 5),
    ("agent", 6),
    ("render", 6),
    // This test itself (it imports nothing from dsh).
    ("layering", 0),
    // Test support that imports nothing from dsh.
    ("fuzz_seeds", 0),
];

type ModPath = Vec<String>;

/// One path naming something in the crate, from the module it is written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    from: ModPath,
    target: ModPath,
}

fn is_punct(t: Option<&TokenTree>, c: char) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    is_punct(tokens.get(i), ':') && is_punct(tokens.get(i + 1), ':')
}

/// Expands one use tree (or expression path) starting at `tokens[i]`, whose
/// segments so far are `prefix`; returns the index after it.
fn path_at(
    tokens: &[TokenTree],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match tokens.get(i) {
            Some(TokenTree::Ident(id)) if id == "self" && !prefix.is_empty() => i += 1,
            Some(TokenTree::Ident(id)) if id != "as" => {
                prefix.push(id.to_string());
                i += 1;
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for part in inner.split(|t| is_punct(Some(t), ',')) {
                    if !part.is_empty() {
                        path_at(part, 0, prefix.clone(), out);
                    }
                }
                return i + 1;
            }
            _ => break,
        }
        if is_path_sep(tokens, i) {
            i += 2;
        } else {
            break;
        }
    }
    out.push(prefix);
    i
}

/// Resolves `crate`/`super`/`self` against the module the path is written in.
fn resolve(module: &[String], path: &[String]) -> Option<ModPath> {
    let (first, rest) = path.split_first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let mut rest = rest;
    while first == "super" && rest.first().is_some_and(|s| s == "super") {
        base.pop()?;
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

fn scan(
    tokens: TokenStream,
    module: &ModPath,
    inline_mods: &mut Vec<ModPath>,
    out: &mut Vec<Reference>,
) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            // An inline module (`mod tests { ... }`): its own paths are relative to it.
            TokenTree::Ident(id) if id == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(g))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                    && g.delimiter() == Delimiter::Brace
                {
                    let mut inner = module.clone();
                    inner.push(name.to_string());
                    inline_mods.push(inner.clone());
                    scan(g.stream(), &inner, inline_mods, out);
                    i += 3;
                    continue;
                }
                i += 1;
            }
            TokenTree::Ident(id)
                if (id == "crate" || id == "super" || id == "self")
                    && is_path_sep(&tokens, i + 1)
                    && !(i >= 2 && is_path_sep(&tokens, i - 2)) =>
            {
                let mut paths = Vec::new();
                let base = vec![id.to_string()];
                i = path_at(&tokens, i + 3, base, &mut paths);
                for p in paths {
                    if let Some(target) = resolve(module, &p) {
                        out.push(Reference {
                            from: module.clone(),
                            target,
                        });
                    }
                }
            }
            TokenTree::Group(g) => {
                scan(g.stream(), module, inline_mods, out);
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// The module a source file is, from its path under `src/`.
fn module_of(rel: &Path) -> ModPath {
    let mut parts: ModPath = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("reading src/").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module and every reference of the library's sources (`main.rs`
/// and `cli/` are the binary, on top of everything).
fn library() -> (BTreeSet<ModPath>, Vec<Reference>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut refs = Vec::new();
    let mut inline = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src/").to_owned();
        if rel == Path::new("main.rs") || rel.starts_with("cli") {
            continue;
        }
        let module = module_of(&rel);
        let text = std::fs::read_to_string(&file).expect("reading a source file");
        let tokens: TokenStream = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e:?}", rel.display()));
        scan(tokens, &module, &mut inline, &mut refs);
        modules.insert(module);
    }
    modules.extend(inline);
    (modules, refs)
}

/// The module a path lands in: its longest prefix that is a module.
fn owner<'a>(modules: &'a BTreeSet<ModPath>, target: &[String]) -> Option<&'a ModPath> {
    (1..=target.len())
        .rev()
        .find_map(|n| modules.get(&target[..n].to_vec()))
}

fn layer(top: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == top).map(|(_, l)| *l)
}

/// References against the layering, as "from → target" lines.
fn violations(modules: &BTreeSet<ModPath>, refs: &[Reference]) -> Vec<String> {
    let mut bad = Vec::new();
    for r in refs {
        let (Some(from), Some(to)) = (r.from.first(), r.target.first()) else {
            continue;
        };
        if from == to || owner(modules, &r.target).is_none() {
            continue;
        }
        match (layer(from), layer(to)) {
            (Some(a), Some(b)) if b < a => {}
            _ => bad.push(format!(
                "{} imports {} (layers {:?} → {:?})",
                r.from.join("::"),
                r.target.join("::"),
                layer(from),
                layer(to)
            )),
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

/// Pairs of modules that import each other, at every depth (`model` ⇄
/// `render` as well as `model::a` ⇄ `model::b`); a parent and its own child
/// module excepted: `mod x;` and `use super::..` are one module in two files.
fn mutual(modules: &BTreeSet<ModPath>, refs: &[Reference]) -> Vec<String> {
    let mut edges: BTreeMap<&[String], BTreeSet<&[String]>> = BTreeMap::new();
    for r in refs {
        let Some(to) = owner(modules, &r.target) else {
            continue;
        };
        for depth in 1..=r.from.len().max(to.len()) {
            let a = &r.from[..depth.min(r.from.len())];
            let b = &to[..depth.min(to.len())];
            if !a.starts_with(b) && !b.starts_with(a) {
                edges.entry(a).or_default().insert(b);
            }
        }
    }
    let mut pairs = Vec::new();
    for (a, tos) in &edges {
        for b in tos {
            if a < b && edges.get(b).is_some_and(|back| back.contains(a)) {
                pairs.push(format!("{} ⇄ {}", a.join("::"), b.join("::")));
            }
        }
    }
    pairs
}

#[test]
fn imports_only_go_down_the_layers() {
    let (modules, refs) = library();
    assert!(refs.len() > 100, "the scan found {} references", refs.len());
    let bad = violations(&modules, &refs);
    assert!(
        bad.is_empty(),
        "imports against the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let (modules, refs) = library();
    let pairs = mutual(&modules, &refs);
    assert!(
        pairs.is_empty(),
        "modules that import each other:\n{}",
        pairs.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let (modules, _) = library();
    let tops: BTreeSet<&str> = modules
        .iter()
        .filter_map(|m| m.first().map(String::as_str))
        .collect();
    let listed: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    assert_eq!(tops, listed, "lib.rs's modules and the layer table differ");
}

#[test]
fn the_scan_sees_uses_expressions_macros_and_nested_groups() {
    let src = r#"
        use crate::{api::{self, Reply}, units::bytes};
        use super::sibling::Thing;
        fn f() { let _ = format!("{}", crate::render::bytes(1)); }
        mod tests { use super::*; use crate::agent::Agent; }
        pub(crate) fn g(&self) -> Self { Self::new() }
    "#;
    let module: ModPath = vec!["model".into(), "container".into()];
    let mut inline = Vec::new();
    let mut refs = Vec::new();
    scan(src.parse().unwrap(), &module, &mut inline, &mut refs);
    let targets: Vec<String> = refs.iter().map(|r| r.target.join("::")).collect();
    assert_eq!(
        targets,
        [
            "api",
            "api::Reply",
            "units::bytes",
            "model::sibling::Thing",
            "render::bytes",
            "model::container",
            "agent::Agent",
        ]
    );
    let modules: BTreeSet<ModPath> = [
        vec!["api"],
        vec!["units"],
        vec!["render"],
        vec!["agent"],
        vec!["model"],
        vec!["model", "container"],
        vec!["model", "sibling"],
    ]
    .into_iter()
    .map(|m| m.into_iter().map(String::from).collect())
    .collect();
    let bad = violations(&modules, &refs);
    assert_eq!(bad.len(), 4, "{bad:#?}");
    assert!(
        bad.iter()
            .any(|b| b.starts_with("model::container imports render::bytes"))
    );
    assert!(
        bad.iter()
            .any(|b| b.starts_with("model::container::tests imports agent::Agent"))
    );
    // A back-edge makes a pair.
    refs.push(Reference {
        from: vec!["model".into(), "sibling".into()],
        target: vec!["model".into(), "container".into(), "X".into()],
    });
    assert_eq!(
        mutual(&modules, &refs),
        ["model::container ⇄ model::sibling"]
    );
}
