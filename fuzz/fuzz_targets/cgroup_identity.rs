//! Cgroup path -> container identity, on arbitrary paths. Properties: the
//! identity does not depend on how the slashes are spelt, and a container's
//! own cgroup is an element-wise prefix of the path that identifies as the
//! same container.
#![no_main]

use dsh::{cgroup::identity::identify, untrusted::from_utf8_escaped};
use libfuzzer_sys::fuzz_target;

fn normalise(path: &str) -> String {
    let elems: Vec<&str> = path.split('/').filter(|e| !e.is_empty()).collect();
    format!("/{}", elems.join("/"))
}

fuzz_target!(|data: &[u8]| {
    let path = from_utf8_escaped(data);
    let id = identify(&path);
    let n = normalise(&path);
    assert_eq!(identify(&n), id, "{path:?} normalised to {n:?}");
    let spelt = format!("{}/", path.replace('/', "//"));
    assert_eq!(identify(&spelt), id, "{path:?} spelt {spelt:?}");
    if let Some(id) = id {
        assert!(
            n == id.cgroup || n.starts_with(&format!("{}/", id.cgroup)),
            "{path:?}: container cgroup {:?} is not a prefix",
            id.cgroup
        );
        assert_eq!(identify(&id.cgroup).as_ref(), Some(&id), "{path:?}");
        assert!(!id.runtime_id.is_empty(), "{path:?}");
    }
});
