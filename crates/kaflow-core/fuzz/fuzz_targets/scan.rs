//! The whole core on any bytes: capture, reassembly, labelling, the columns handed over. It
//! finishes or says why not; it never panics.
#![no_main]

use kaflow_core::capture::{Merge, Reader, Window};
use kaflow_core::scan::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    let Ok(reader) = Reader::from_read("fuzz", input) else {
        return;
    };
    let Ok(merge) = Merge::from_reader(reader, Window::default()) else {
        return;
    };
    // two shards and short rounds: dealing the segments out is part of what is fuzzed
    let Ok(mut scanner) = Scanner::sharded(merge, &[8080], 2, 7) else {
        return;
    };
    while let Ok(Some(batch)) = scanner.next_batch() {
        let every: Vec<usize> = (0..batch.len()).collect();
        std::hint::black_box((
            batch.connections(),
            batch.records(&every),
            batch.request_rows(),
        ));
    }
});
