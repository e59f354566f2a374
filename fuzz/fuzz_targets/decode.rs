//! Frames and event bodies from arbitrary bytes: no panic, no allocation sized by an
//! unchecked length, and every body that decodes is canonical (re-encodes to itself).
#![no_main]

use keyledger::core::event::Event;
use keyledger::core::format::FrameReader;
use libfuzzer_sys::fuzz_target;

fn check_body(body: &[u8]) {
    if let Ok(ev) = Event::decode(body) {
        assert_eq!(ev.encode(), body, "a decoded body is not canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    check_body(data);
    // The same bytes as a ledger file: after a valid header, and as they are.
    let mut file = keyledger::core::format::header_bytes().to_vec();
    file.extend_from_slice(data);
    for bytes in [&file[..], data] {
        if let Ok(frames) = FrameReader::new(bytes) {
            for frame in frames.map_while(Result::ok) {
                check_body(&frame.body);
            }
        }
    }
});
