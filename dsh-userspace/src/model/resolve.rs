//! Names as operators give them, to containers: runtime names (a reused
//! name means the current container), cgroup paths with or without their
//! leading `/`, runtime ids and their prefixes.
use super::{Model, container::Container};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    #[error("no container matches {name:?}; known: {}", list(.known))]
    Unknown { name: String, known: Vec<String> },
    #[error("{name:?} is ambiguous; it matches: {}", list(.matches))]
    Ambiguous { name: String, matches: Vec<String> },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

impl Model {
    /// Resolves a name as the CLI was given it: runtime name (current or
    /// last known), cgroup path (with or without its leading `/`), runtime
    /// id, or a unique id prefix (at least 4 hex chars). A name several
    /// containers have borne resolves to the current one (known to its
    /// runtime or with a cgroup; running first), else the most recent.
    pub fn resolve(&self, name: &str) -> Result<String, ResolveError> {
        let named = self.bearing(name);
        if !named.is_empty() {
            return pick(name, named);
        }
        let candidates: Vec<&Container> =
            if name.len() >= 4 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.containers
                    .values()
                    .filter(|c| !c.sandbox && c.identity.runtime_id.starts_with(name))
                    .collect()
            } else {
                Vec::new()
            };
        match candidates.len() {
            1 => Ok(candidates[0].key().to_owned()),
            0 => Err(ResolveError::Unknown {
                name: name.to_owned(),
                known: self.containers.values().take(20).map(describe).collect(),
            }),
            _ => Err(ResolveError::Ambiguous {
                name: name.to_owned(),
                matches: candidates.into_iter().map(describe).collect(),
            }),
        }
    }

    /// Containers that bear `name` (or bore it last), or whose cgroup path
    /// or runtime id it is; pod sandboxes are not containers to operators.
    fn bearing(&self, name: &str) -> Vec<&Container> {
        let bare = name.trim_start_matches('/');
        self.containers
            .values()
            .filter(|c| !c.sandbox)
            .filter(|c| {
                c.display_id() == name
                    || c.last_name.as_deref() == Some(name)
                    || c.meta.as_ref().is_some_and(|m| m.name == name)
                    || (!bare.is_empty() && c.identity.cgroup.trim_start_matches('/') == bare)
                    || c.identity.runtime_id == name
            })
            .collect()
    }

    /// The other containers that have borne the name `key`'s container was
    /// resolved from: its earlier incarnations, oldest first.
    pub fn earlier_incarnations(&self, name: &str, key: &str) -> Vec<String> {
        let mut earlier: Vec<&Container> = self
            .bearing(name)
            .into_iter()
            .filter(|c| c.key() != key)
            .collect();
        earlier.sort_by_key(|c| c.last_change);
        earlier.into_iter().map(|c| c.key().to_owned()).collect()
    }
}

/// Candidates are listed by names containers chose: each one escaped and
/// cut, so the list stays readable (and harmless) whatever they hold.
fn describe(c: &Container) -> String {
    format!(
        "{} ({})",
        crate::untrusted::name(c.display_id()),
        crate::untrusted::name(short(c.key()))
    )
}

/// Among containers bearing one name: the current one, else the latest.
fn pick(name: &str, named: Vec<&Container>) -> Result<String, ResolveError> {
    let current: Vec<&Container> = named
        .iter()
        .copied()
        .filter(|c| c.meta.is_some() || c.cgroup_id.is_some())
        .collect();
    let chosen = match current.len() {
        0 => named.iter().max_by_key(|c| c.last_change).copied(),
        1 => Some(current[0]),
        _ => {
            let live: Vec<&Container> = current
                .iter()
                .copied()
                .filter(|c| c.state.is_live())
                .collect();
            if live.len() == 1 {
                Some(live[0])
            } else {
                return Err(ResolveError::Ambiguous {
                    name: name.to_owned(),
                    matches: current.into_iter().map(describe).collect(),
                });
            }
        }
    };
    chosen
        .map(|c| c.key().to_owned())
        .ok_or_else(|| ResolveError::Unknown {
            name: name.to_owned(),
            known: Vec::new(),
        })
}

fn short(key: &str) -> &str {
    if key.len() == 64 { &key[..12] } else { key }
}
