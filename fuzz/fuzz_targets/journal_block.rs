//! The journal's on-disk blocks: arbitrary stored bytes (a damaged journal)
//! and blocks of lines of arbitrary values. Properties: a damaged block is
//! refused or read without panicking, and reads the same after re-encoding;
//! decode(encode(lines)) == lines for every line the model could write, at
//! the journal's precision (times in µs, usage in ms).
#![no_main]

use arbitrary::Unstructured;
use dsh::journal::block::{Block, ContainerNo};
use libfuzzer_sys::fuzz_target;

fn key(no: ContainerNo) -> Option<String> {
    Some(format!("container-{}", no.0))
}

/// Every line of a block as (container, entry), errors as text.
fn lines(b: &Block) -> Vec<Result<(ContainerNo, dsh::model::entry::LogEntry), String>> {
    b.entries(key)
        .map(|l| l.map_err(|e| e.to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Block::decode(data) {
        let _ = (b.first_seq(), b.last_seq(), b.newest(), b.is_full());
        let read = lines(&b);
        let again = Block::decode(&b.encode()).expect("a decoded block re-encodes");
        assert_eq!(lines(&again), read);
    }
    let mut u = Unstructured::new(data);
    let Ok(written) = dsh_fuzz::block_lines(&mut u) else {
        return;
    };
    let mut b = Block::default();
    for (cno, e) in &written {
        b.push(e, *cno);
    }
    let back: Vec<_> = Block::decode(&b.encode())
        .expect("an encoded block decodes")
        .entries(key)
        .map(|l| l.expect("an encoded line decodes"))
        .collect();
    assert_eq!(back, written);
});
