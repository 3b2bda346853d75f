//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`) are written from
//! the unit tests' own fixtures, so seeds and fixtures never drift apart:
//! a test that owns a fixture hands it to [`seed`], which fails when the
//! committed file differs. `DSH_WRITE_FUZZ_SEEDS=1 cargo test -p
//! dsh-userspace --lib` writes them.
use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Checks (or, with `DSH_WRITE_FUZZ_SEEDS=1`, writes) the seed `name` of
/// fuzz target `target`.
pub fn seed(target: &str, name: &str, bytes: &[u8]) {
    let path = corpus(target).join(name);
    if std::env::var_os("DSH_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(corpus(target)).expect("creating the corpus dir");
        std::fs::write(&path, bytes).expect("writing a fuzz seed");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fuzz seed {}: {e}; write the seeds with DSH_WRITE_FUZZ_SEEDS=1 \
             cargo test -p dsh-userspace --lib",
            path.display()
        )
    });
    assert!(
        committed == bytes,
        "fuzz seed {} differs from the fixture it comes from; rewrite the seeds \
         with DSH_WRITE_FUZZ_SEEDS=1 cargo test -p dsh-userspace --lib",
        path.display()
    );
}
