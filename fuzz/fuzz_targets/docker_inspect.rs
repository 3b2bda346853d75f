//! Docker's `GET /containers/{id}/json` answer, arbitrary bytes (a hostile
//! or broken engine). Properties: the name has no leading '/', published
//! ports are sorted and unique, an address is never empty, restarts are
//! never negative.
#![no_main]

use dsh::runtime::docker::decode_inspect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = decode_inspect(data) else {
        return;
    };
    assert!(!m.name.starts_with('/'), "{:?}", m.name);
    assert!(m.ports.windows(2).all(|w| w[0] < w[1]), "{:?}", m.ports);
    assert!(m.ip.as_deref().is_none_or(|ip| !ip.is_empty()));
    let _ = dsh::untrusted::name(&m.name);
});
