//! Journal entries: arbitrary stored bytes (a damaged journal) and entries
//! made of arbitrary values. Property: decode(encode(e)) == e, for every
//! entry decoding yields and every entry the model could write.
#![no_main]

use arbitrary::Unstructured;
use dsh::journal::{decode_entry, encode_entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = decode_entry(0, data) {
        let bytes = encode_entry(&e).expect("a decoded entry encodes");
        assert_eq!(decode_entry(0, &bytes).expect("re-encoded entry"), e);
    }
    if let Ok(e) = dsh_fuzz::log_entry(&mut Unstructured::new(data)) {
        let bytes = encode_entry(&e).expect("entries encode");
        assert_eq!(decode_entry(e.seq, &bytes).expect("encoded entry"), e);
    }
});
