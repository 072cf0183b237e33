//! The value that crosses from TCP reconstruction to HTTP labelling: one finished connection,
//! oriented client (nginx) → server (upstream), each direction reassembled into one stream.

/// A control segment (SYN, FIN, RST) as first seen: when, which packet, where in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub ts_ns: i64,
    pub frame: u64,
    /// Stream offset: for a FIN the position of the FIN itself, for a RST where it claims to be.
    pub offset: i64,
}

/// A direction's bytes as the capture holds them: pieces in stream order, each byte once.
///
/// Piece `i` covers stream offsets `starts[i] .. starts[i] + lengths[i]`; its captured bytes are
/// `data[data_starts[i] .. data_starts[i] + captured[i]]` (fewer than `lengths[i]` when a snaplen
/// cut the packet). Offsets count from the first byte after the SYN, or, mid-connection, from
/// the first byte the capture saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    pub starts: Vec<i64>,
    pub lengths: Vec<u32>,
    pub ts: Vec<i64>,
    pub frames: Vec<u64>,
    pub captured: Vec<u32>,
    pub data_starts: Vec<u64>,
    pub data: Vec<u8>,
    /// Pieces before this one have no bytes in `data`: they were framed as they arrived
    /// (`framed`) and dropped, `dropped` captured bytes in all.
    pub kept_from: usize,
    pub dropped: u64,
    /// How far the framer got while the bytes arrived; framing the stream goes on from there.
    pub framed: crate::http::Framing,
}

/// One direction of a connection, reassembled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub stream: Stream,
    /// First SYN (client) or SYN-ACK (server).
    pub syn: Option<Mark>,
    pub syn_count: u32,
    /// First FIN; its offset is the stream position of the FIN.
    pub fin: Option<Mark>,
    /// First RST near the stream (blind resets are only counted, in `ignored_rsts`).
    pub rst: Option<Mark>,
    pub packets: u64,
    /// Segments whose every byte had been seen already.
    pub retransmissions: u64,
    /// Payload bytes, each counted once.
    pub bytes: u64,
    /// Bytes in gaps the capture never saw.
    pub missing: u64,
    pub last_ts_ns: Option<i64>,
    /// Data beyond this direction's own FIN.
    pub late_data: Vec<Mark>,
    /// RSTs whose number is far from the stream: blind resets, not closes.
    pub ignored_rsts: u64,
}

/// Both directions of one connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConnection {
    /// 1-based, in order of first packet.
    pub id: u64,
    pub ip_version: u8,
    pub client_ip: [u8; 16],
    pub server_ip: [u8; 16],
    pub client_port: u16,
    pub server_port: u16,
    pub first_ts_ns: i64,
    pub first_frame: u64,
    pub last_ts_ns: i64,
    /// No client SYN seen: the connection was open before the capture began.
    pub partial: bool,
    /// Zeek's `conn_state` and `history` for it (`crate::zeek`), from its packets in order.
    pub zeek_state: &'static str,
    pub zeek_history: String,
    /// The client's first segment after the SYN-ACK (its ACK of it, or data).
    pub handshake_ack_ns: Option<i64>,
    pub to_server: Flow,
    pub to_client: Flow,
}

/// Counts reconstruction adds to the capture summary. `other_port_counts` keeps, for segments
/// on no upstream port, the lower of their two ports (the likely service port), so that when
/// nothing matched the error can suggest `--port`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub upstream_segments: u64,
    pub other_ports: u64,
    pub other_port_counts: std::collections::BTreeMap<u16, u64>,
    /// Connection attempts the right way round: a SYN sent to an upstream port.
    pub syns_to_upstream: u64,
    /// SYNs sent *from* an upstream port, by the port they went to: the port given is the
    /// client's side of those connections.
    pub syns_from_upstream: std::collections::BTreeMap<u16, u64>,
    /// SYN-ACKs sent *to* an upstream port: the other half of a handshake the wrong way round.
    pub syn_acks_to_upstream: u64,
}

impl TcpStats {
    /// The counts of another part of the same capture added in.
    pub fn add(&mut self, other: TcpStats) {
        self.upstream_segments += other.upstream_segments;
        self.other_ports += other.other_ports;
        for (port, n) in other.other_port_counts {
            *self.other_port_counts.entry(port).or_insert(0) += n;
        }
        self.syns_to_upstream += other.syns_to_upstream;
        for (port, n) in other.syns_from_upstream {
            *self.syns_from_upstream.entry(port).or_insert(0) += n;
        }
        self.syn_acks_to_upstream += other.syn_acks_to_upstream;
    }
}
