//! The verifier on arbitrary files: no panic, and a report for every input (checked both
//! after a valid header, to reach the frames, and as the bytes are).
#![no_main]

use keyledger::evidence::verify::{Options, verify_reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = keyledger::core::format::header_bytes().to_vec();
    file.extend_from_slice(data);
    for bytes in [&file[..], data] {
        // Reading from memory cannot fail; any problem is a finding in the report.
        let _ = verify_reader(bytes, &Options::default()).expect("a report");
    }
});
