//! Ring-buffer records from arbitrary bytes (a kernel/user ABI mismatch, a
//! torn record). Properties: decoding reads only its record (bytes after it
//! change nothing), strings hold no NUL, and every event prints as JSON.
#![no_main]

use dsh::probe::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ev) = Event::decode(data) else {
        return;
    };
    let mut longer = data.to_vec();
    longer.extend_from_slice(&[0xa5; 64]);
    assert_eq!(Event::decode(&longer).as_ref(), Ok(&ev));
    assert!(!ev.task.comm.contains('\0'));
    let json = dsh::untrusted::json::to_string(&ev).expect("events serialise");
    assert!(!json.contains('\x1b'));
});
