//! The value that crosses from the capture reader to TCP reconstruction: one TCP segment.

/// TCP flag bits as they sit in the 13th byte of the TCP header.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// One TCP segment as the capture holds it. Its captured payload bytes are
/// `window[payload_off .. payload_off + captured_len]` of the window it came in.
///
/// Addresses are 16 bytes; IPv4 addresses are IPv4-mapped (`::ffff:a.b.c.d`) so one key type
/// serves both families, and `ip_version` says how to print them. `payload_len` comes from the
/// IP header, so it is the true length even when a snaplen cut the packet (`captured_len` is
/// then smaller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// 1-based packet number in the file (counts every record, TCP or not).
    pub frame: u64,
    /// Capture timestamp, integer nanoseconds since the epoch.
    pub ts_ns: i64,
    pub ip_version: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Raw (unscaled) receive window.
    pub window: u16,
    pub payload_len: u32,
    pub captured_len: u32,
    /// Offset of the first payload byte in the window's bytes, or, when `reassembled`, in the
    /// reader's reassembled datagrams.
    pub payload_off: u32,
    /// It came in IP fragments: its payload is in the datagram the reader put back together
    /// ([`crate::capture::Reader::payload`]), not in the window.
    pub reassembled: bool,
}

impl Segment {
    /// The captured payload bytes in the window the segment came in; empty if the offsets do
    /// not fit the window (they always do for segments the reader made) or the segment came in
    /// fragments.
    pub fn payload<'w>(&self, window: &'w [u8]) -> &'w [u8] {
        if self.reassembled {
            return &[];
        }
        let from = self.payload_off as usize;
        from.checked_add(self.captured_len as usize)
            .and_then(|to| window.get(from..to))
            .unwrap_or(&[])
    }
}
