//! The agent's request decoder on arbitrary lines. Properties: nothing
//! larger than the stated maximum is accepted, and a request the agent
//! accepts, sent again as the CLI sends it, is the same request.
#![no_main]

use dsh::api::{MAX_REQUEST_BYTES, decode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_request(data) else {
        return;
    };
    assert!(data.len() <= MAX_REQUEST_BYTES + 1);
    let mut line = serde_json::to_vec(&req).expect("requests serialise");
    line.push(b'\n');
    if line.len() <= MAX_REQUEST_BYTES {
        assert_eq!(decode_request(&line).expect("re-encoded request"), req);
    }
});
