//! The whole core on any bytes: capture, reassembly, labelling. It finishes or says why not;
//! it never panics.
#![no_main]

use kaflow_core::capture::Reader;
use kaflow_core::scan::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    let Ok(reader) = Reader::from_read("fuzz", input) else {
        return;
    };
    let mut scanner = Scanner::new(reader, &[8080]);
    while let Ok(Some(_)) = scanner.next_batch() {}
});
