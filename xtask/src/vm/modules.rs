//! Which kernel modules to load, in which order, read from the modules
//! themselves: a package unpacked with `dpkg-deb` has no `modules.dep`
//! (depmod writes it at install time), and this machine has no `modinfo`.
use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// Aliases soft dependencies use (with `_` for `-`), and the module that
/// provides each where the CPU may lack the accelerated one (qemu's default
/// CPU has no SSE4.2 for crc32c-intel).
const ALIASES: &[(&str, &str)] = &[
    ("crypto_crc32c", "crc32c_generic"),
    ("crc32c", "crc32c_generic"),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub path: PathBuf,
}

/// `wanted` and everything they depend on, dependencies first; modules
/// built into the kernel are left out.
pub fn load_order(tree: &Path, wanted: &[&str]) -> anyhow::Result<Vec<Module>> {
    let builtin = builtin_names(tree);
    let index = index(&tree.join("kernel"))?;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in wanted {
        visit(&canonical(name), &builtin, &index, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    builtin: &HashSet<String>,
    index: &HashMap<String, PathBuf>,
    seen: &mut HashSet<String>,
    order: &mut Vec<Module>,
    depth: usize,
) -> anyhow::Result<()> {
    if depth > 32 {
        bail!("module dependencies nest deeper than 32 at {name}: a cycle?");
    }
    if builtin.contains(name) || !seen.insert(name.to_owned()) {
        return Ok(());
    }
    let Some(path) = index.get(name) else {
        bail!("kernel module {name} is neither built in nor in the package");
    };
    let info = modinfo(&read_module(path)?);
    let (hard, soft) = dependencies(&info);
    for dep in hard {
        visit(&dep, builtin, index, seen, order, depth + 1)?;
    }
    // A soft dependency names a module or an alias (`crypto-crc32c`); one that
    // names neither is optional by definition.
    for dep in soft {
        let dep = ALIASES
            .iter()
            .find(|(alias, _)| *alias == dep)
            .map_or(dep.as_str(), |(_, module)| module);
        if index.contains_key(dep) {
            visit(dep, builtin, index, seen, order, depth + 1)?;
        }
    }
    order.push(Module {
        name: name.to_owned(),
        path: path.clone(),
    });
    Ok(())
}

/// Module names use `_` and `-` interchangeably; the kernel uses `_`.
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// `kernel/fs/ext4/ext4.ko.xz` → `ext4`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file.split_once(".ko")?.0;
    Some(canonical(stem))
}

/// Names listed in `modules.builtin` (present in the package).
fn builtin_names(tree: &Path) -> HashSet<String> {
    fs::read_to_string(tree.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(Path::new(l)))
        .collect()
}

/// Module name → file, for every module of the tree.
fn index(dir: &Path) -> anyhow::Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = module_name(&path) {
                out.insert(name, path);
            }
        }
    }
    Ok(out)
}

/// A module's bytes, decompressed with the tool its suffix names.
pub fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("ko") => return fs::read(path).with_context(|| format!("reading {}", path.display())),
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => bail!("{}: not a kernel module", path.display()),
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| {
            format!(
                "running {tool} (install it) to decompress {}",
                path.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{tool} -dc {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// The `key=value` strings of a module's `.modinfo` section. They are
/// NUL-separated; `depends=` and `softdep=` are unique to that section.
fn modinfo(module: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["depends", "softdep"] {
        let needle = format!("\0{key}=");
        if let Some(at) = find(module, needle.as_bytes()) {
            let value = &module[at + needle.len()..];
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            out.push((
                key.to_owned(),
                String::from_utf8_lossy(&value[..end]).into_owned(),
            ));
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Hard dependencies, and the modules a `softdep` says to load before
/// (`softdep=pre: crc32c`: ext4's checksums need it, though nothing links it).
fn dependencies(info: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let (mut deps, mut soft) = (Vec::new(), Vec::new());
    for (key, value) in info {
        match key.as_str() {
            "depends" => deps.extend(value.split(',').filter(|d| !d.is_empty()).map(canonical)),
            "softdep" => {
                let mut pre = false;
                for word in value.split_whitespace() {
                    match word {
                        "pre:" => pre = true,
                        "post:" => pre = false,
                        w if pre => soft.push(canonical(w)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (deps, soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_strings_and_dependencies() {
        let module = b"\x7fELF...\0license=GPL\0depends=jbd2,mbcache,crc16\0softdep=pre: crc32c post: foo\0name=ext4\0";
        let info = modinfo(module);
        let (hard, soft) = dependencies(&info);
        assert_eq!(hard, ["jbd2", "mbcache", "crc16"]);
        assert_eq!(soft, ["crc32c"]);
        assert_eq!(dependencies(&modinfo(b"\0depends=\0")), (vec![], vec![]));
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(
            module_name(Path::new("kernel/fs/ext4/ext4.ko.xz")).as_deref(),
            Some("ext4")
        );
        assert_eq!(
            module_name(Path::new("kernel/drivers/virtio/virtio-pci.ko")).as_deref(),
            Some("virtio_pci")
        );
        assert_eq!(module_name(Path::new("modules.order")), None);
    }
}
