//! The capture reader on any bytes: it yields segments and counts, or says why not; it never
//! panics, and every packet it read is a segment or a counted skip.
#![no_main]

use kaflow_core::capture::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    // small windows, so records cross window boundaries as they do in big files
    let window = 1 + data.first().copied().unwrap_or(0) as usize * 64;
    let Ok(mut reader) = Reader::from_read_with_window("fuzz", input, window) else {
        return;
    };
    let mut segments = 0u64;
    while let Ok(true) = reader.next_window() {
        segments += reader.segments().len() as u64;
    }
    let info = reader.info();
    let skipped: u64 = info.skipped.iter().map(|(_, n)| n).sum();
    assert_eq!(segments, info.tcp_segments);
    assert_eq!(info.packets, info.tcp_segments + skipped);
});
