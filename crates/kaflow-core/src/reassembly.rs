//! TCP reconstruction, one segment at a time: `pcapkit/tcp.py`'s `Reconstructor` as plain code.
//!
//! A table keyed by the oriented 4-tuple holds the open connection attempts. Each direction
//! keeps its data segments (position, lengths, time, packet; their captured bytes one after
//! another in the direction's payload buffer) and a few running values; what every byte of the
//! stream is, and which segments were retransmissions, is decided when the connection is
//! finished, because "the first arrival wins" is about capture time, and a segment written later
//! in the file may carry an earlier timestamp.
//!
//! Usually a direction's segments come in time order, each beginning at or after the end of the
//! one before: then each is one whole piece of the stream and the payload buffer is the
//! stream's data, which two flags kept at every segment establish, so finishing is copying the
//! rows' columns out. Anything else (a retransmission, an overlap, a segment out of time order,
//! a RST before the chain, a SYN that moves the reference so far that an offset would saturate)
//! takes the general way, from the same rows.
//!
//! The rules are tcp.py's (its docstrings give the reasons):
//!
//! - the side on an upstream port is the server; segments on no upstream port are only counted;
//! - a client SYN (SYN without ACK) with the ISN of the tuple's connection is a retransmission;
//!   with another ISN it is another attempt: the tuple's connection if the one there has only
//!   SYNs (which is parked beside it) or has closed (port reuse: it is finished), else parked
//!   beside it (a stray or forged SYN does not end an established connection). A SYN with a
//!   parked attempt's ISN is that attempt's; a SYN-ACK acknowledging a parked attempt's ISN + 1
//!   makes it the tuple's connection; a SYN timestamped no later than everything its tuple has
//!   so far, or one the tuple's SYN-ACK acknowledges, opens that connection rather than a new
//!   one (a SYN-ACK written first, even stamped first);
//! - sequence numbers are unwrapped per direction in file order, each step the signed 32-bit
//!   distance from the previous non-RST segment, offsets counting from the first SYN + 1 (or
//!   from the first segment without one); a RST is placed against the segment before it and is
//!   only a close within [`RST_WINDOW`] of where its direction stood;
//! - a connection is finished once both sides closed (or a RST was seen) and it was quiet for
//!   [`LINGER_NS`], once it was silent for [`IDLE_FINISH_NS`], when its tuple is reused, or at
//!   the capture's end. "Now" is the latest timestamp seen so far, checked at every packet:
//!   tcp.py checks it once per grouping of rows, see [`Reassembler`].

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Bound;

use crate::batch::{captured_key, request_row, FirstHead};
use crate::flow::{Flow, Mark, Stream, TcpConnection, TcpStats};
use crate::http::{Advance, Framing, Kept, Kind, Names};
use crate::segment::{Segment, ACK, FIN, RST, SYN};
use crate::zeek::Zeek;

/// A finished connection stays findable this long after its last packet (capture time), so
/// late retransmissions of its FIN or last ACK still land on it rather than opening a new one.
pub const LINGER_NS: i64 = 10 * 1_000_000_000;

/// A connection silent this long (capture time) is finished whatever its state.
pub const IDLE_FINISH_NS: i64 = 300 * 1_000_000_000;

/// Following a live capture (`--follow`), a connection over and quiet this long is finished:
/// its findings are wanted as they happen, and on one host a closing handshake's last
/// packets come within a round trip, far sooner than this.
pub const FOLLOW_LINGER_NS: i64 = 500_000_000;

/// Following a live capture, a connection attempt (the client's SYNs, nothing else) is given up
/// once quiet this much longer than it has lasted: a SYN retransmission timer doubles each
/// time, so the next one is due no later than the attempt's age plus the first timer (1 s).
pub const FOLLOW_GIVE_UP_NS: i64 = 2_000_000_000;

/// A RST further than this from where its direction's stream stands is not taken as a close
/// (RFC 5961: a stack accepts a RST only at the next expected sequence number).
pub const RST_WINDOW: i64 = 1 << 20;

/// Finished connections are looked for among all open ones at most once per this much capture
/// time (and only after enough packets to pay for the scan); a packet's own connection is
/// checked on every packet, so this only decides when memory is given back, never an answer.
const SWEEP_NS: i64 = 1_000_000_000;

/// How many segments ahead [`Reassembler::push_all`] loads what a segment's `push` reads.
const PREFETCH_AHEAD: usize = 8;

/// Loads the `len` bytes at `p` into the cache ahead of their use.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = p.cast::<i8>();
        let mut at = 0;
        while at < len {
            // A prefetch never faults and has no effect on the program's state.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at))
            };
            at += 64;
        }
    }
}

/// The signed 32-bit distance `a - b`.
fn signed32(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// A connection's tuple, oriented client → server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    client: u128,
    server: u128,
    /// client port << 24 | server port << 8 | IP version
    ports: u64,
}

impl Key {
    fn of(seg: &Segment, to_srv: bool) -> Key {
        let (client, server, cport, sport) = if to_srv {
            (seg.src, seg.dst, seg.sport, seg.dport)
        } else {
            (seg.dst, seg.src, seg.dport, seg.sport)
        };
        Key {
            client: u128::from_be_bytes(client),
            server: u128::from_be_bytes(server),
            ports: u64::from(cport) << 24 | u64::from(sport) << 8 | u64::from(seg.ip_version),
        }
    }
}

/// Folded multiplies of the key's words with per-table secrets (foldhash's construction):
/// SipHash would cost as much as the rest of a packet's work, and the secrets keep crafted tuples
/// from colliding on purpose.
#[derive(Clone, Copy)]
struct KeyHashing(u64, u64);

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0, self.1)
    }
}

struct KeyHasher(u64, u64);

/// The 128-bit product's halves xored: every input bit reaches the top and the bottom bits
/// hashbrown takes its control byte and bucket from.
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = fold(self.0 ^ x, self.1);
    }
    fn write_u128(&mut self, x: u128) {
        self.0 = fold(self.0 ^ (x as u64), self.1 ^ ((x >> 64) as u64));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The upstream ports, one bit each: a segment on none of them is only counted.
#[derive(Clone, Debug)]
pub struct Ports(Box<[u64; 1024]>);

impl Ports {
    pub fn new(ports: &[u16]) -> Ports {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            if let Some(w) = bits.get_mut(usize::from(p >> 6)) {
                *w |= 1 << (p & 63);
            }
        }
        Ports(bits)
    }

    pub fn upstream(&self, port: u16) -> bool {
        self.0
            .get(usize::from(port >> 6))
            .is_some_and(|w| w & (1 << (port & 63)) != 0)
    }

    /// Whether either end of the segment is an upstream port.
    pub fn carries(&self, seg: &Segment) -> bool {
        self.upstream(seg.dport) || self.upstream(seg.sport)
    }
}

/// How connections are numbered.
#[derive(Debug)]
enum Numbering {
    /// 1, 2, 3... in the order they opened.
    Count(u64),
    /// By the frame of the packet that opened each (no packet opens two), those frames kept in
    /// order: several reassemblers, each given some of the capture's connections, are numbered
    /// together from them (`crate::shard`).
    ByFrame(Vec<u64>),
}

/// Slots of [`Reassembler::hints`].
const HINTS: usize = 4096;

fn hint_slot(key: &Key) -> usize {
    // the client port's low bits as they are (ports handed out in turn fall in distinct
    // slots); the server port and the client address's low bits tell apart clients that happen
    // to use the same port
    let client_port = (key.ports >> 24) as usize;
    let server_port = (key.ports >> 8) as usize & 0xFFFF;
    let client = ((key.client as u32).wrapping_mul(0x9E37_79B9) >> 20) as usize;
    (client_port ^ (server_port << 2) ^ client) % HINTS
}

/// Where a position sits before the direction's reference (its first SYN + 1, or its first
/// segment) is known: a SYN written after other segments moves the reference.
#[derive(Clone, Copy, Debug)]
enum Pos {
    /// Relative to the direction's first non-RST segment; the reference adds one constant.
    Chain(i64),
    /// A RST before any non-RST segment: its own distance from the reference, plus `add`.
    Ref { seq: u32, add: i64 },
}

/// One data segment of a direction.
#[derive(Clone, Copy, Debug)]
struct Row {
    /// Chain-relative start, or for a RST before any other segment its sequence number.
    start: i64,
    ts: i64,
    frame: u64,
    plen: u32,
    /// Its captured bytes, the next ones in the direction's payload buffer.
    clen: u32,
}

/// A RST that came before any other segment of its direction: whether it is near the stream
/// depends on the reference, known only at the end.
#[derive(Clone, Copy, Debug)]
struct EarlyRst {
    ts: i64,
    frame: u64,
    seq: u32,
    syn: bool,
}

/// The running values of a direction's chain of non-RST segments.
#[derive(Clone, Copy, Debug)]
struct Chain {
    base_seq: u32,
    prev_seq: u32,
    prev: i64,
    /// Furthest end (a FIN's own number included) of the chain so far.
    reach: i64,
}

/// One direction. `repr(C)` keeps what every data segment touches together at the front, the
/// framing state right after it; what control segments touch comes last.
#[derive(Debug, Default)]
#[repr(C)]
struct Dir {
    rows: Vec<Row>,
    payload: Vec<u8>,
    chain: Option<Chain>,
    /// Latest timestamp and first sequence number: meaningful once `packets` is not 0.
    last_ts: i64,
    packets: u64,
    first_seq: u32,
    syn_seq: u32,
    syn_count: u32,
    /// Data rows so far came in (time, packet) order with starts never going back, all on the
    /// chain: arrival order is then file order and offset order, and one pass decides.
    disordered: bool,
    /// Some data row began before the end of the one before it (or its end saturated): rows
    /// are then not the stream's pieces as they stand.
    overlapped: bool,
    /// For each of the first rows whose `start` is a sequence number (a RST before the chain:
    /// once the chain begins no row is), 1, or 3 when the SYN's one is to be added.
    raw_rows: Vec<u8>,
    syn: Option<Mark>,
    live: Live,
    fin: Option<(i64, u64, Pos)>,
    rst: Option<(i64, u64, i64)>,
    ignored_rsts: u64,
    early_rsts: Vec<EarlyRst>,
}

/// Framing a direction as its bytes arrive, and dropping what is framed (`payload` then holds
/// only the bytes of the rows from `kept_row` on: an unfinished head, a chunk-size line...).
///
/// It is on while the direction's data rows come in order, each beginning where the one before
/// ended, every byte captured, on a connection whose packets' times never go back: then the
/// rows are the stream's pieces as they will stand, and [`Framing::advance`] takes the steps
/// the framer over the whole stream would take. It goes off for good at the first row that is
/// not so (a hole, an overlap, a retransmission, a snaplen-cut packet, a packet stamped before
/// one already seen), or at a step only the whole stream decides (`Advance::Lost`: the general
/// parser, a resync at the next burst, a capture that began mid-message, TLS): from then on the
/// direction's bytes are kept, from the first one not yet framed, and framing goes on from
/// there when the connection is finished. Framed bytes are final but in cases no real capture
/// shows together: a packet written later with an earlier time that carries other bytes for a
/// head already framed, a SYN written after data that moves the stream's start below 0, a
/// server's burst inside a chunked body that turns out broken, set by packets stamped out of
/// order.
#[derive(Debug, Default)]
#[repr(C)]
struct Live {
    off: bool,
    started: bool,
    /// The other side sent data since this side's latest data row: a burst may begin at the
    /// next one (see `Live::other_data`).
    other_spoke: bool,
    /// Rows before this one have no bytes in `payload` any more.
    kept_row: usize,
    /// Where the stream so far ends (on the chain): where the next row must begin.
    end: i64,
    /// The time of the latest data row.
    last_ts: i64,
    /// The captured bytes of the rows before `kept_row`.
    dropped: u64,
    /// The client's first request head, read as its rows come (None once read, or for the
    /// server).
    first_head: Option<Box<FirstHead>>,
    framed: Framing,
}

impl Live {
    /// The other side sent data at `ts`. Inside a chunked body, a later row of this side may
    /// then begin a burst, where framing would start again if the body turns out broken: such
    /// a row is not framed now, and when `ts` is not after this side's latest row, that row
    /// may be one (rows of the latest time are kept while walking chunks).
    fn other_data(&mut self, ts: i64) {
        if self.off || !self.started {
            return;
        }
        if self.framed.in_chunks() && ts <= self.last_ts {
            self.off = true;
        }
        self.other_spoke = true;
    }
}

impl Dir {
    fn add(&mut self, seg: &Segment, payload: &[u8]) {
        let (ts, frame, seq, flags) = (seg.ts_ns, seg.frame, seg.seq, seg.flags);
        if self.packets == 0 {
            self.first_seq = seq;
            self.last_ts = ts;
        }
        self.packets += 1;
        self.last_ts = self.last_ts.max(ts);
        let is_syn = flags & SYN != 0;
        if is_syn {
            self.syn_count = self.syn_count.saturating_add(1);
            if self.syn.is_none() {
                // the stream's offsets now count from it: framing goes on once it is finished
                self.live.off |= self.live.started;
                self.syn = Some(Mark {
                    ts_ns: ts,
                    frame,
                    offset: 0,
                });
                self.syn_seq = seq;
            }
        }
        let syn_step = i64::from(is_syn);
        let plen = i64::from(seg.payload_len);
        let fin_step = i64::from(flags & FIN != 0);
        let start = if flags & RST == 0 {
            let rel = match &mut self.chain {
                None => {
                    self.chain = Some(Chain {
                        base_seq: seq,
                        prev_seq: seq,
                        prev: 0,
                        reach: i64::MIN,
                    });
                    0
                }
                Some(c) => c.prev.saturating_add(signed32(seq, c.prev_seq)),
            };
            let start = rel.saturating_add(syn_step);
            if let Some(c) = &mut self.chain {
                c.prev_seq = seq;
                c.prev = rel;
                c.reach = c
                    .reach
                    .max(start.saturating_add(plen).saturating_add(fin_step));
            }
            Pos::Chain(start)
        } else if let Some(c) = &self.chain {
            let start = c
                .prev
                .saturating_add(signed32(seq, c.prev_seq))
                .saturating_add(syn_step);
            // both sides of the comparison move with the reference: it can be decided now
            if start.abs_diff(c.reach) <= RST_WINDOW as u64 {
                if self.rst.is_none() {
                    self.rst = Some((ts, frame, start));
                }
            } else {
                self.ignored_rsts += 1;
            }
            Pos::Chain(start)
        } else {
            self.early_rsts.push(EarlyRst {
                ts,
                frame,
                seq,
                syn: is_syn,
            });
            Pos::Ref { seq, add: syn_step }
        };
        if flags & FIN != 0 && self.fin.is_none() {
            let end = match start {
                Pos::Chain(s) => Pos::Chain(s.saturating_add(plen)),
                Pos::Ref { seq, add } => Pos::Ref {
                    seq,
                    add: add + plen,
                },
            };
            self.fin = Some((ts, frame, end));
        }
        if seg.payload_len == 0 {
            return;
        }
        let bytes = payload
            .get(..payload.len().min(seg.payload_len as usize))
            .unwrap_or(payload);
        let (start, raw) = match start {
            Pos::Chain(s) => (s, 0),
            Pos::Ref { seq, .. } => (i64::from(seq), 1 + 2 * u8::from(is_syn)),
        };
        // the row before sits where this one is written: no other line of memory is touched
        let last = self.rows.last();
        match last {
            _ if raw != 0 => self.disordered = true,
            Some(p) if (ts, frame) <= (p.ts, p.frame) || start < p.start => self.disordered = true,
            _ => {}
        }
        self.overlapped |= start.checked_add(i64::from(seg.payload_len)).is_none()
            || last.is_some_and(|p| start < p.start.saturating_add(i64::from(p.plen)));
        self.rows.push(Row {
            start,
            ts,
            frame,
            plen: seg.payload_len,
            clen: bytes.len() as u32,
        });
        if raw != 0 {
            self.raw_rows.push(raw);
        }
    }

    /// The captured bytes of the data row just added: framed now if they can be (and dropped
    /// once framed), else kept. `requests`: the client's requests framed so far.
    fn take(&mut self, bytes: &[u8], kind: Kind, requests: &Kept) {
        let n = self.rows.len();
        let Some(&row) = self.rows.last() else {
            return;
        };
        let live = &mut self.live;
        if !live.off && !live.started {
            live.started = true;
            // on the chain, the stream begins after the SYN (or where the capture began)
            live.end = match self.chain {
                Some(c) if self.syn.is_some() && c.base_seq == self.syn_seq => 1,
                _ => 0,
            };
            live.kept_row = n - 1;
            if kind == Kind::Request {
                live.first_head = Some(Box::default());
            }
        }
        let in_order = self.raw_rows.is_empty()
            && row.start == live.end
            && row.clen == row.plen
            && !(live.other_spoke && live.framed.in_chunks());
        live.off |= !in_order;
        if live.off {
            // Vec's own doubling: an open connection's bytes are what memory follows, so they
            // are not over-allocated further to save copying
            self.payload.extend_from_slice(bytes);
            return;
        }
        live.end = row.start.saturating_add(i64::from(row.plen));
        live.last_ts = row.ts;
        live.other_spoke = false;
        if let Some(h) = &mut live.first_head {
            if !h.piece(row.start, row.plen, bytes) {
                live.framed.head_names = Some(h.names());
                live.first_head = None;
            }
        }
        if live.kept_row + 1 == n && self.payload.is_empty() {
            // nothing held: the packet's own bytes are framed, and kept only if still needed
            let rows = &self.rows;
            let place = |pos: i64| place_in(rows, n - 1, pos);
            let step = live.framed.advance(kind, row.start, bytes, requests, place);
            live.off = step == Advance::Lost;
            if !live.off && droppable(live, &row) {
                live.kept_row = n;
                live.dropped = live.dropped.saturating_add(u64::from(row.clen));
                self.give_back();
            } else {
                self.payload.extend_from_slice(bytes);
            }
            return;
        }
        self.payload.extend_from_slice(bytes);
        self.frame_held(kind, requests);
    }

    /// Frame the bytes held, as far as they allow, and drop those framed.
    fn frame_held(&mut self, kind: Kind, requests: &Kept) {
        let live = &mut self.live;
        if live.off || !live.started || self.payload.is_empty() {
            return;
        }
        let rows = self.rows.get(live.kept_row..).unwrap_or(&[]);
        let Some(first) = rows.first() else {
            return;
        };
        let (all, from) = (&self.rows, live.kept_row);
        let place = |pos: i64| place_in(all, from, pos);
        if live
            .framed
            .advance(kind, first.start, &self.payload, requests, place)
            == Advance::Lost
        {
            live.off = true;
            return;
        }
        let (mut k, mut bytes) = (0, 0usize);
        while let Some(r) = rows.get(k).filter(|r| droppable(live, r)) {
            bytes += r.clen as usize;
            k += 1;
        }
        if k > 0 && bytes <= self.payload.len() {
            self.payload.drain(..bytes);
            live.kept_row += k;
            live.dropped = live.dropped.saturating_add(bytes as u64);
            self.give_back();
        }
    }

    /// What growing left unused goes back: the connection is over and lingers.
    fn shrink(&mut self) {
        self.rows.shrink_to_fit();
        self.payload.shrink_to_fit();
        self.live.framed.messages.shrink_to_fit();
    }

    /// What a long head or a direction waiting for its requests made the buffer grow to goes
    /// back once it holds little again, and all of it once it holds nothing: most packets are
    /// framed whole and never use it, and idle keepalive connections each keeping the few KB a
    /// split head once needed add up.
    fn give_back(&mut self) {
        let (len, cap) = (self.payload.len(), self.payload.capacity());
        if len == 0 {
            self.payload = Vec::new();
        } else if cap > 16 * 1024 && len < cap / 4 {
            self.payload.shrink_to(len.saturating_mul(2));
        }
    }

    fn finish(self) -> Flow {
        if self.packets == 0 {
            return Flow::default();
        }
        let reference = if self.syn.is_some() {
            self.syn_seq.wrapping_add(1)
        } else {
            self.first_seq
        };
        let delta = self.chain.map_or(0, |c| signed32(c.base_seq, reference));
        let resolve = |p: Pos| match p {
            Pos::Chain(x) => x.saturating_add(delta),
            Pos::Ref { seq, add } => signed32(seq, reference).saturating_add(add),
        };
        let start_of = |r: &Row, raw: u8| match raw {
            0 => r.start.saturating_add(delta),
            raw => signed32(r.start as u32, reference) + i64::from(raw >> 1),
        };

        // RSTs before the chain come before every other RST in the file
        let mut ignored_rsts = self.ignored_rsts;
        let mut rst = None;
        for r in &self.early_rsts {
            let start = signed32(r.seq, reference) + i64::from(r.syn);
            if start.unsigned_abs() <= RST_WINDOW as u64 {
                rst = rst.or(Some(Mark {
                    ts_ns: r.ts,
                    frame: r.frame,
                    offset: start,
                }));
            } else {
                ignored_rsts += 1;
            }
        }
        let rst = rst.or(self.rst.map(|(ts_ns, frame, s)| Mark {
            ts_ns,
            frame,
            offset: s.saturating_add(delta),
        }));
        let fin = self.fin.map(|(ts_ns, frame, p)| Mark {
            ts_ns,
            frame,
            offset: resolve(p),
        });

        // Rows in order, none overlapping the one before, all on the chain, and no offset
        // saturating once the reference is added: each row is then one whole piece of the
        // stream as it stands (what `in_order` and `build_stream` would find), so the stream is
        // the rows' columns, and the payload buffer its data.
        let whole = !self.disordered
            && !self.overlapped
            && match (self.rows.first(), self.rows.last()) {
                (Some(a), Some(z)) => {
                    a.start.checked_add(delta).is_some()
                        && z.start
                            .saturating_add(i64::from(z.plen))
                            .checked_add(delta)
                            .is_some()
                }
                _ => true,
            };
        if whole {
            let rows = self.rows;
            let mut bytes = 0u64;
            let mut gaps = 0u64;
            let mut end = rows.first().map_or(0, |r| r.start);
            for r in &rows {
                bytes = bytes.saturating_add(u64::from(r.plen));
                gaps = gaps.saturating_add(r.start.abs_diff(end));
                end = r.start.saturating_add(i64::from(r.plen));
            }
            let live = self.live;
            let mut data = self.payload;
            if data.capacity() / 2 > data.len() {
                // what growing left unused goes back (in place) before the stream is kept
                data.shrink_to_fit();
            }
            let starts: Vec<i64> = rows.iter().map(|r| r.start.saturating_add(delta)).collect();
            let late_data = match fin {
                Some(f) => {
                    let from = starts.partition_point(|&s| s < f.offset);
                    rows.get(from..)
                        .unwrap_or(&[])
                        .iter()
                        .zip(starts.get(from..).unwrap_or(&[]))
                        .map(|(r, &offset)| Mark {
                            ts_ns: r.ts,
                            frame: r.frame,
                            offset,
                        })
                        .collect()
                }
                None => Vec::new(),
            };
            let mut framed = live.framed;
            framed.shift(delta);
            let stream = Stream {
                starts,
                lengths: rows.iter().map(|r| r.plen).collect(),
                ts: rows.iter().map(|r| r.ts).collect(),
                frames: rows.iter().map(|r| r.frame).collect(),
                captured: rows.iter().map(|r| r.clen).collect(),
                data_starts: data_starts(&rows, live.kept_row),
                data,
                kept_from: live.kept_row,
                dropped: live.dropped,
                framed,
            };
            return Flow {
                stream,
                syn: self.syn,
                syn_count: self.syn_count,
                fin,
                rst,
                packets: self.packets,
                retransmissions: 0,
                bytes,
                missing: gaps,
                last_ts_ns: Some(self.last_ts),
                late_data,
                ignored_rsts,
            };
        }

        // every row's start from here on is its stream offset
        let mut rows = self.rows;
        if delta != 0 || self.disordered {
            for (i, r) in rows.iter_mut().enumerate() {
                r.start = start_of(r, self.raw_rows.get(i).copied().unwrap_or(0));
            }
        }
        let late_data = match fin {
            Some(f) => rows
                .iter()
                .filter(|r| r.start >= f.offset)
                .map(|r| Mark {
                    ts_ns: r.ts,
                    frame: r.frame,
                    offset: r.start,
                })
                .collect(),
            None => Vec::new(),
        };

        let (pieces, retransmissions) = if self.disordered {
            by_arrival(&rows)
        } else {
            in_order(&rows, 0..rows.len())
        };
        let (mut stream, bytes, missing) =
            build_stream(&pieces, &rows, self.payload, self.live.kept_row);
        stream.framed = self.live.framed;
        stream.framed.shift(delta);
        Flow {
            stream,
            syn: self.syn,
            syn_count: self.syn_count,
            fin,
            rst,
            packets: self.packets,
            retransmissions,
            bytes,
            missing,
            last_ts_ns: Some(self.last_ts),
            late_data,
            ignored_rsts,
        }
    }
}

/// A piece of the stream: bytes `a..b`, brought by row `row`.
type Piece = (i64, i64, usize);

/// Rows whose starts never go back, in arrival order: each brings what lies beyond the furthest
/// byte before it.
fn in_order(rows: &[Row], order: impl Iterator<Item = usize>) -> (Vec<Piece>, u64) {
    let mut pieces = Vec::with_capacity(rows.len());
    let mut retrans = 0;
    let mut reach: Option<i64> = None;
    for i in order {
        let Some(r) = rows.get(i) else { continue };
        let s = r.start;
        let e = s.saturating_add(i64::from(r.plen));
        let before = reach.unwrap_or(s);
        if e <= before {
            retrans += 1;
            continue;
        }
        pieces.push((s.max(before), e, i));
        reach = Some(before.max(e));
    }
    (pieces, retrans)
}

/// Rows in (time, packet) order, each keeping only the bytes no earlier arrival brought: a
/// retransmission that says something else never overwrites what the receiver most likely took.
fn by_arrival(rows: &[Row]) -> (Vec<Piece>, u64) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows.get(i).map(|r| (r.ts, r.frame)));
    let mut prev = i64::MIN;
    let monotonic = order.iter().filter_map(|&i| rows.get(i)).all(|r| {
        let ok = r.start >= prev;
        prev = r.start;
        ok
    });
    if monotonic {
        return in_order(rows, order.into_iter());
    }
    // ranges taken so far: disjoint, not touching
    let mut taken: BTreeMap<i64, i64> = BTreeMap::new();
    let mut pieces = Vec::new();
    let mut retrans = 0;
    let mut met: Vec<(i64, i64)> = Vec::new();
    for i in order {
        let Some(r) = rows.get(i) else { continue };
        let s0 = r.start;
        let e0 = s0.saturating_add(i64::from(r.plen));
        met.clear();
        if let Some((&a, &b)) = taken.range(..=s0).next_back() {
            if b >= s0 {
                met.push((a, b));
            }
        }
        for (&a, &b) in taken.range((Bound::Excluded(s0), Bound::Included(e0))) {
            met.push((a, b));
        }
        let before = pieces.len();
        let mut pos = s0;
        for &(a, b) in &met {
            if a > pos {
                pieces.push((pos, a.min(e0), i));
            }
            pos = pos.max(b);
        }
        if pos < e0 {
            pieces.push((pos, e0, i));
        }
        if pieces.len() == before {
            retrans += 1;
            continue;
        }
        let (mut lo, mut hi) = (s0, e0);
        for &(a, b) in &met {
            taken.remove(&a);
            lo = lo.min(a);
            hi = hi.max(b);
        }
        taken.insert(lo, hi);
    }
    pieces.sort_unstable_by_key(|p| p.0);
    (pieces, retrans)
}

/// The stream from its pieces (in offset order): each piece's captured bytes, and the unique
/// and missing byte counts.
/// Where each row's captured bytes start in the payload buffer, which holds those of the rows
/// from `kept` on (0 for those before).
fn data_starts(rows: &[Row], kept: usize) -> Vec<u64> {
    // `map`, not `scan`: the length is known, so the column is allocated once
    let mut total = 0u64;
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let at = total;
            if i >= kept {
                total += u64::from(r.clen);
            }
            at
        })
        .collect()
}

/// The index of the row among `rows[from..]` (in stream order) that holds offset `pos`.
fn place_in(rows: &[Row], from: usize, pos: i64) -> u64 {
    let among = rows.get(from..).unwrap_or(&[]);
    let at = among.iter().rposition(|r| r.start <= pos).unwrap_or(0);
    (from + at) as u64
}

/// When a kept message was sent, and the packet that brought its first byte: its row's.
fn stamp_of(rows: &[Row], row: u64) -> (i64, u64) {
    usize::try_from(row)
        .ok()
        .and_then(|i| rows.get(i))
        .map_or((0, 0), |r| (r.ts, r.frame))
}

/// Whether a row's bytes are framed and no longer needed: it ends before framing reads on,
/// and inside a chunked body it is not among the latest rows (one of those may yet begin a
/// burst, see [`Live::other_data`]); and the client's first head has been read.
fn droppable(live: &Live, r: &Row) -> bool {
    r.start.saturating_add(i64::from(r.plen)) <= live.framed.needs_from()
        && !(live.framed.in_chunks() && r.ts >= live.last_ts)
        && live.first_head.is_none()
}

/// The stream from its pieces (in offset order): each piece's captured bytes, and the unique
/// and missing byte counts. `payload` holds the bytes of the rows from `kept` on: pieces of
/// the rows before come first (framed while they arrived) and have none.
fn build_stream(
    pieces: &[Piece],
    rows: &[Row],
    payload: Vec<u8>,
    kept: usize,
) -> (Stream, u64, u64) {
    let offs = data_starts(rows, kept);
    let n = pieces.len();
    let mut st = Stream {
        starts: Vec::with_capacity(n),
        lengths: Vec::with_capacity(n),
        ts: Vec::with_capacity(n),
        frames: Vec::with_capacity(n),
        captured: Vec::with_capacity(n),
        data_starts: Vec::with_capacity(n),
        data: Vec::new(),
        ..Stream::default()
    };
    let mut bytes = 0u64;
    let mut missing = 0u64;
    let mut prev_end: Option<i64> = None;
    let mut total = 0u64;
    // the payload buffer is the data as it is when every row is one whole piece, in order
    let mut whole = n == rows.len();
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(n);
    for (k, &(a, b, i)) in pieces.iter().enumerate() {
        let (Some(r), Some(&off)) = (rows.get(i), offs.get(i)) else {
            continue;
        };
        if let Some(p) = prev_end {
            if a > p {
                missing = missing.saturating_add(a.abs_diff(p));
            }
        }
        prev_end = Some(b);
        let s = r.start;
        let skip = a.saturating_sub(s);
        let have = (i64::from(r.clen)
            .min(b.saturating_sub(s))
            .saturating_sub(skip))
        .max(0);
        whole &= k == i && skip == 0 && have == i64::from(r.clen);
        st.starts.push(a);
        let len = b.abs_diff(a);
        st.lengths.push(u32::try_from(len).unwrap_or(u32::MAX));
        bytes = bytes.saturating_add(len);
        st.ts.push(r.ts);
        st.frames.push(r.frame);
        if i < kept {
            // framed and dropped while the bytes arrived: before every piece kept, but for a
            // row stamped earlier and written later (then its bytes count as not captured)
            let leading = st.kept_from == k;
            st.captured.push(if leading { have as u32 } else { 0 });
            st.data_starts.push(total);
            if leading {
                st.kept_from = k + 1;
                st.dropped = st.dropped.saturating_add(have as u64);
            }
            continue;
        }
        let o = (off as usize).saturating_add(skip.max(0) as usize);
        spans.push((o, have as usize));
        st.captured.push(have as u32);
        st.data_starts.push(total);
        total += have as u64;
    }
    if whole {
        st.data = payload;
        if st.data.capacity() / 2 > st.data.len() {
            st.data.shrink_to_fit();
        }
    } else {
        st.data.reserve(total as usize);
        for (o, have) in spans {
            if let Some(piece) = payload.get(o..o.saturating_add(have)) {
                st.data.extend_from_slice(piece);
            }
        }
    }
    (st, bytes, missing)
}

/// `repr(C)`, aligned to a cache line: the tuple and what every packet checks before it is
/// handed on share the first line, Zeek's state follows, then the directions.
#[derive(Debug)]
#[repr(C, align(64))]
struct Conn {
    key: Key,
    last_ts: i64,
    /// Earliest timestamp of its packets: a client SYN no later than this opens it.
    min_ts: i64,
    /// 1: the client sent a FIN or RST, 2: the server did, 4: a RST was seen.
    closed: u8,
    /// [`Conn::tell`] met a tunnel's start.
    tunnel: bool,
    client_isn: Option<u32>,
    /// What the server's first SYN-ACK acknowledged: a client SYN whose ISN + 1 it is belongs
    /// to this connection however late the capture wrote it.
    syn_ack_ack: Option<u32>,
    /// The client's first segment after the SYN-ACK (its ACK of it, or data): which host the
    /// capture was taken on is told by where the handshake's round trip falls.
    handshake_ack_ns: Option<i64>,
    first_ts: i64,
    zeek: Zeek,
    up: Dir,
    down: Dir,
    id: u64,
    first_frame: u64,
    told: Told,
}

/// How far [`Conn::tell`] got: requests told, responses paired, the request the next response
/// answers (whether a tunnel began is `Conn::tunnel`, in a byte the connection has spare).
#[derive(Debug, Default)]
struct Told {
    requests: usize,
    responses: usize,
    head: usize,
}

impl Conn {
    fn new(key: Key, id: u64, seg: &Segment, live: bool) -> Self {
        let dir = || Dir {
            live: Live {
                off: !live,
                ..Live::default()
            },
            ..Dir::default()
        };
        Conn {
            key,
            id,
            first_ts: seg.ts_ns,
            first_frame: seg.frame,
            min_ts: seg.ts_ns,
            last_ts: seg.ts_ns,
            client_isn: None,
            syn_ack_ack: None,
            handshake_ack_ns: None,
            closed: 0,
            tunnel: false,
            up: dir(),
            down: dir(),
            zeek: Zeek::default(),
            told: Told::default(),
        }
    }

    /// The rows ([`crate::batch::REQUEST_ROW`] int64s each, as `Batch::request_rows` gives
    /// them once the connection is finished) of the requests framed so far that were not told
    /// yet and are sure to be in its labels: every request before one is answered by a final
    /// response that is no tunnel's start (a 101, a CONNECT's 2xx: labelling drops the requests
    /// after it). Pairing is labelling's: a response answers the oldest request not yet
    /// answered, sent no later than it.
    fn tell(&mut self, out: &mut Vec<i64>) {
        let reqs = &self.up.live.framed.messages;
        let resps = &self.down.live.framed.messages;
        let (up_rows, down_rows) = (&self.up.rows, &self.down.rows);
        let t = &mut self.told;
        while let (Some(r), false) = (resps.stamp(t.responses), self.tunnel) {
            let Some(q) = reqs.stamp(t.head) else {
                break; // its request may not be framed yet
            };
            let (q, r) = (stamp_of(up_rows, q), stamp_of(down_rows, r));
            let status = resps.status(t.responses);
            if q <= r && status.map_or(true, |s| s >= 200 || s == 101) {
                let connect = reqs.method(t.head) == Some(b"CONNECT");
                self.tunnel = status == Some(101)
                    || (connect && status.is_some_and(|s| (200..300).contains(&s)));
                if !self.tunnel {
                    t.head += 1;
                }
            }
            t.responses += 1;
        }
        let sure = reqs.len().min(t.head + 1);
        let opened = if self.up.syn.is_some() {
            self.first_ts
        } else {
            -1
        };
        let mut names = Names::default();
        for i in t.requests..sure {
            let (Some(q), Some(row)) = (reqs.get(i, &mut names), reqs.stamp(i)) else {
                break;
            };
            let (ts_ns, frame) = stamp_of(up_rows, row);
            let id = q.values.as_deref().and_then(|v| v.request_id.as_deref());
            let key = captured_key(
                q.method.as_deref(),
                q.target.as_deref(),
                q.host.as_deref(),
                id,
            );
            out.extend_from_slice(&request_row(key, ts_ns, self.id, (i as u64, frame), opened));
        }
        t.requests = t.requests.max(sure);
    }

    fn add(&mut self, seg: &Segment, payload: &[u8], c2s: bool) {
        if seg.ts_ns < self.last_ts {
            // a packet stamped before one already seen: rows may not be the pieces they seem
            self.up.live.off = true;
            self.down.live.off = true;
        }
        self.last_ts = self.last_ts.max(seg.ts_ns);
        self.min_ts = self.min_ts.min(seg.ts_ns);
        if seg.flags & (FIN | RST) != 0 {
            let was_over = self.over();
            self.closed |= if c2s { 1 } else { 2 } | if seg.flags & RST != 0 { 4 } else { 0 };
            if !was_over && self.over() {
                // it lingers now, mostly unchanged: what growing left unused goes back
                self.up.shrink();
                self.down.shrink();
            }
        }
        if !c2s && seg.flags & (SYN | ACK) == SYN | ACK && self.syn_ack_ack.is_none() {
            self.syn_ack_ack = Some(seg.ack);
        }
        if c2s
            && self.handshake_ack_ns.is_none()
            && self.down.syn.is_some()
            && seg.flags & (SYN | ACK) == ACK
        {
            self.handshake_ack_ns = Some(seg.ts_ns);
        }
        self.zeek.packet(
            c2s,
            seg.flags,
            seg.seq,
            seg.ack,
            seg.window,
            seg.payload_len,
        );
        let (mine, other) = if c2s {
            (&mut self.up, &mut self.down)
        } else {
            (&mut self.down, &mut self.up)
        };
        let rows = mine.rows.len();
        mine.add(seg, payload);
        if mine.rows.len() == rows {
            return;
        }
        let bytes = payload
            .get(..payload.len().min(seg.payload_len as usize))
            .unwrap_or(payload);
        other.live.other_data(seg.ts_ns);
        if c2s {
            self.up.take(bytes, Kind::Request, &Kept::default());
            // a response waiting for the method of the request it answers may go on
            self.down
                .frame_held(Kind::Response, &self.up.live.framed.messages);
        } else {
            self.down
                .take(bytes, Kind::Response, &self.up.live.framed.messages);
        }
    }

    /// Nothing but the client's SYNs so far: an attempt another SYN on its tuple need not end.
    fn attempt_only(&self) -> bool {
        self.down.packets == 0 && self.up.packets == u64::from(self.up.syn_count)
    }

    /// Both sides closed, or a RST was seen.
    fn over(&self) -> bool {
        self.closed & 4 != 0 || self.closed & 3 == 3
    }

    fn expired(&self, now: i64, linger_ns: i64, following: bool) -> bool {
        let over = self.over();
        let gave_up = || {
            let age = self.last_ts.saturating_sub(self.first_ts);
            self.attempt_only() && now.saturating_sub(self.last_ts) > age + FOLLOW_GIVE_UP_NS
        };
        self.last_ts < now.saturating_sub(IDLE_FINISH_NS)
            || (over && self.last_ts < now.saturating_sub(linger_ns))
            || (following && gave_up())
    }

    fn finish(self) -> TcpConnection {
        let to_server = self.up.finish();
        let to_client = self.down.finish();
        TcpConnection {
            id: self.id,
            ip_version: (self.key.ports & 0xFF) as u8,
            client_ip: self.key.client.to_be_bytes(),
            server_ip: self.key.server.to_be_bytes(),
            client_port: (self.key.ports >> 24) as u16,
            server_port: (self.key.ports >> 8) as u16,
            first_ts_ns: self.first_ts,
            first_frame: self.first_frame,
            last_ts_ns: self.last_ts,
            partial: to_server.syn.is_none(),
            zeek_state: self.zeek.state(),
            zeek_history: self.zeek.history().to_string(),
            handshake_ack_ns: self.handshake_ack_ns,
            to_server,
            to_client,
        }
    }
}

/// The connection table: segments in, in file order; finished connections out.
///
/// Expiry is decided at every packet against "now", the latest timestamp seen so far, before
/// the packet is handed to its connection: a packet whose tuple's connection is over and was
/// quiet for the linger time (or silent for the idle time) opens a new connection. tcp.py checks
/// the same rule only after it has handed a whole grouping of rows (up to 2^17 rows, or about
/// [`LINGER_NS`] of capture time) to their connections, against the grouping's latest time; so
/// there such a late packet still lands on the old connection unless a grouping ended in
/// between whose latest time was already past the limit (a small capture is one grouping: it
/// always lands). Likewise tcp.py's "a SYN no later than everything before it opens this
/// connection" compares with the connection's first packet and the grouping's rows, this with
/// every packet of the connection: they differ only when timestamps go back across groupings.
pub struct Reassembler {
    ports: Ports,
    /// Where each open connection sits in `conns`: the table's buckets stay small, so finding
    /// a tuple touches little memory however large the connections grow.
    table: HashMap<Key, u32, KeyHashing>,
    conns: Vec<Conn>,
    /// Where a connection was last found, by a few bits of its ports and client address: open
    /// connections mostly differ in their client port, so most packets find theirs here without
    /// hashing the tuple. Only a hint: what it points to is taken only if its tuple is the
    /// packet's (a tuple has one connection in `conns`), so it is never cleared, and tuples
    /// crafted to share a slot only send their packets to the table.
    hints: Box<[u32; HINTS]>,
    /// Other attempts on a tuple that has a connection in `conns`: SYNs with another ISN
    /// (forged, or an attempt given up and retried with a new ISN). A later SYN with one's ISN
    /// is its retransmission, a SYN-ACK acknowledging one makes it the tuple's connection.
    parked: HashMap<Key, Vec<Conn>, KeyHashing>,
    numbering: Numbering,
    now: i64,
    next_sweep: i64,
    since_sweep: u64,
    linger_ns: i64,
    /// Following a live capture: attempts are given up ([`FOLLOW_GIVE_UP_NS`]).
    following: bool,
    stats: TcpStats,
    /// Frame as the bytes arrive (see [`Live`]); off only to test that it changes nothing.
    live: bool,
}

impl Reassembler {
    /// `ports`: the upstream (server) ports.
    pub fn new(ports: &[u16]) -> Self {
        let secrets = RandomState::new();
        // odd, so a zero word cannot zero the product
        let seed = KeyHashing(
            secrets.hash_one(0x6b61_666c_6f77_u64),
            secrets.hash_one(0x0074_6162_6c65_u64) | 1,
        );
        Reassembler {
            ports: Ports::new(ports),
            table: HashMap::with_hasher(seed),
            parked: HashMap::with_hasher(seed),
            conns: Vec::new(),
            hints: Box::new([u32::MAX; HINTS]),
            numbering: Numbering::Count(1),
            now: i64::MIN,
            next_sweep: i64::MIN,
            since_sweep: 0,
            linger_ns: LINGER_NS,
            following: false,
            stats: TcpStats::default(),
            live: true,
        }
    }

    /// Whether directions are framed as their bytes arrive (the default), or only once their
    /// connection is finished, every byte kept until then: the same answers, at the memory
    /// cost of the whole capture (tests compare the two).
    #[doc(hidden)]
    pub fn frame_as_bytes_arrive(&mut self, on: bool) {
        self.live = on;
    }

    /// For the connections still open, the requests framed since the last call, as
    /// [`crate::batch::Batch::request_rows`] gives them when the connection is finished (the
    /// same key, index and frame): six int64s each, connection by connection. A request is
    /// told once it is sure to be among its connection's labelled requests, which a request
    /// after a tunnel's start never is (see `Conn::tell`). Its time and frame are those of the
    /// packet that brought its first byte, as the connection is finished with, but for a
    /// packet written later and stamped earlier that brings that byte again (the first arrival
    /// by time wins): then the batch has that packet's.
    pub fn open_requests(&mut self) -> Vec<i64> {
        let mut out = Vec::new();
        for c in &mut self.conns {
            c.tell(&mut out);
        }
        out
    }

    /// The same with another linger time (tcp.py's `Reconstructor.linger_ns`).
    pub fn with_linger(ports: &[u16], linger_ns: i64) -> Self {
        Reassembler {
            linger_ns,
            ..Self::new(ports)
        }
    }

    /// For a capture followed as it arrives: connections leave as soon as they are over
    /// ([`FOLLOW_LINGER_NS`]), attempts once given up, and [`Reassembler::advance`] moves time
    /// on while the input is quiet.
    pub fn following(ports: &[u16]) -> Self {
        Reassembler {
            linger_ns: FOLLOW_LINGER_NS,
            following: true,
            ..Self::new(ports)
        }
    }

    /// Capture time has reached `now` though no packet says so (a live input is quiet): every
    /// connection over and quiet by then, or silent, is finished.
    pub fn advance(&mut self, now: i64, done: &mut Vec<TcpConnection>) {
        if now > self.now {
            self.now = now;
        }
        self.sweep(done);
    }

    fn upstream(&self, port: u16) -> bool {
        self.ports.upstream(port)
    }

    /// One of several reassemblers each given some of a capture's connections (all the
    /// packets of each): connections are numbered by the frame that opened them, and
    /// [`Reassembler::take_opened`] tells those frames.
    pub fn sharded(ports: &[u16]) -> Self {
        Reassembler {
            numbering: Numbering::ByFrame(Vec::new()),
            ..Self::new(ports)
        }
    }

    /// Numbered by frame ([`Reassembler::sharded`]): the frames that opened connections since
    /// the last call, in order.
    pub fn take_opened(&mut self) -> Vec<u64> {
        match &mut self.numbering {
            Numbering::Count(_) => Vec::new(),
            Numbering::ByFrame(opened) => std::mem::take(opened),
        }
    }

    /// Capture time has reached `now` with a packet given to another reassembler: time is
    /// the whole capture's, so that a connection is over and quiet here exactly when it would
    /// be in a reassembler given every packet.
    pub fn observe(&mut self, now: i64) {
        self.now = self.now.max(now);
    }

    fn new_id(&mut self, seg: &Segment) -> u64 {
        match &mut self.numbering {
            Numbering::Count(next) => {
                let id = *next;
                *next += 1;
                id
            }
            Numbering::ByFrame(opened) => {
                opened.push(seg.frame);
                seg.frame
            }
        }
    }

    /// Capture time as far as it has got: the latest packet's timestamp, or where
    /// [`Reassembler::advance`] moved it (`None` before any packet).
    pub fn now(&self) -> Option<i64> {
        (self.now != i64::MIN).then_some(self.now)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table.len()
    }

    /// The counts so far.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Segments in file order, each as [`Reassembler::push`] takes it (after
    /// [`Reassembler::observe`] of its `now`, when given), with the same answers. A packet's
    /// connection and bytes are rarely in the cache: while one segment is handled, what the
    /// next few will read is asked for, so that their misses overlap the work in between
    /// rather than come one after another.
    pub fn push_all<'p>(
        &mut self,
        segments: &[Segment],
        now: Option<&[i64]>,
        payload: impl Fn(&Segment) -> &'p [u8],
        done: &mut Vec<TcpConnection>,
    ) {
        for (i, seg) in segments.iter().enumerate() {
            // the connection first, then (once it is in the cache) what it points to
            if let Some(ahead) = segments.get(i + 2 * PREFETCH_AHEAD) {
                self.prefetch(ahead, payload(ahead));
            }
            if let Some(ahead) = segments.get(i + PREFETCH_AHEAD) {
                self.prefetch_buffers(ahead);
            }
            if let Some(&t) = now.and_then(|n| n.get(i)) {
                self.observe(t);
            }
            self.push(seg, payload(seg), done);
        }
    }

    /// The open connection a segment most likely belongs to (the one its hint names: what it
    /// names may have left, or be another tuple's, and is then merely loaded), and its side.
    fn likely_conn(&self, seg: &Segment) -> Option<(&Conn, bool)> {
        let to_srv = self.upstream(seg.dport);
        if !to_srv && !self.upstream(seg.sport) {
            return None;
        }
        let slot = hint_slot(&Key::of(seg, to_srv));
        let at = self.hints.get(slot).map_or(usize::MAX, |&at| at as usize);
        Some((self.conns.get(at)?, to_srv))
    }

    /// Loads the segment's bytes and its connection's fields a packet reads.
    fn prefetch(&self, seg: &Segment, payload: &[u8]) {
        prefetch(payload.as_ptr(), payload.len().min(128));
        if let Some((c, to_srv)) = self.likely_conn(seg) {
            let (mine, other) = if to_srv {
                (&c.up, &c.down)
            } else {
                (&c.down, &c.up)
            };
            prefetch(c, 64);
            prefetch(&c.zeek, 128);
            prefetch(mine, 192);
            prefetch(&mine.live, 192);
            prefetch(&other.live, 128);
        }
    }

    /// Loads the ends of the connection's growing buffers, found through the fields
    /// [`Reassembler::prefetch`] loaded some segments before.
    fn prefetch_buffers(&self, seg: &Segment) {
        if let Some((c, to_srv)) = self.likely_conn(seg) {
            let mine = if to_srv { &c.up } else { &c.down };
            prefetch(mine.rows.as_ptr().wrapping_add(mine.rows.len()), 32);
            mine.live.framed.prefetch_buffers();
            if !to_srv {
                // a response looks up the request it answers, most often the latest
                c.up.live.framed.messages.prefetch_last();
            }
        }
    }

    /// One segment, in file order, and its captured payload bytes (at most `payload_len` of
    /// them are used). Connections this packet finishes (its tuple reused, or found over and
    /// quiet, or silent) are appended to `done`.
    pub fn push(&mut self, seg: &Segment, payload: &[u8], done: &mut Vec<TcpConnection>) {
        let to_srv = self.upstream(seg.dport);
        if !to_srv && !self.upstream(seg.sport) {
            self.other_port(seg);
            return;
        }
        self.stats.upstream_segments += 1;
        self.now = self.now.max(seg.ts_ns);
        self.since_sweep += 1;
        if self.now >= self.next_sweep && self.since_sweep >= self.table.len() as u64 / 4 {
            self.sweep(done);
        }
        let key = Key::of(seg, to_srv);
        let client_syn = to_srv && seg.flags & (SYN | ACK) == SYN;
        if seg.flags & SYN != 0 {
            self.count_syn(to_srv, seg.flags & ACK != 0, seg.dport);
        }
        let (now, linger, following) = (self.now, self.linger_ns, self.following);
        let slot = hint_slot(&key);
        let hint = self.hints.get(slot).map_or(usize::MAX, |&at| at as usize);
        let found = match self.conns.get(hint) {
            Some(c) if c.key == key => Some(hint),
            _ => self.table.get(&key).map(|&at| at as usize),
        };
        if let Some(at) = found {
            if let Some(h) = self.hints.get_mut(slot) {
                *h = at as u32;
            }
            if let Some(c) = self.conns.get_mut(at) {
                let stays = !c.expired(now, linger, following);
                if stays && client_syn {
                    match c.client_isn {
                        Some(isn) if isn == seg.seq => {}
                        Some(_) => return self.other_attempt(at, key, seg, payload, done),
                        // written to the file after packets it precedes, or answered by the
                        // SYN-ACK already here (-i any, multi-queue NICs: a SYN-ACK may even be
                        // stamped before its SYN): it opens this one
                        None if seg.ts_ns <= c.min_ts
                            || c.syn_ack_ack == Some(seg.seq.wrapping_add(1)) =>
                        {
                            c.client_isn = Some(seg.seq);
                            c.first_ts = c.first_ts.min(seg.ts_ns);
                        }
                        None => return self.other_attempt(at, key, seg, payload, done),
                    }
                }
                if stays
                    && !to_srv
                    && seg.flags & (SYN | ACK) == SYN | ACK
                    && c.client_isn.map(|isn| isn.wrapping_add(1)) != Some(seg.ack)
                    && !self.parked.is_empty()
                {
                    return self.answered_attempt(at, key, seg, payload, done);
                }
                if stays {
                    c.add(seg, payload, to_srv);
                    return;
                }
            }
        }
        self.open_new(key, found.is_some(), seg, payload, to_srv, done);
    }

    // What follows happens once a connection, not once a packet: kept out of `push`, whose
    // registers then hold the packet's own values.

    #[cold]
    #[inline(never)]
    fn other_port(&mut self, seg: &Segment) {
        self.stats.other_ports += 1;
        *self
            .stats
            .other_port_counts
            .entry(seg.sport.min(seg.dport))
            .or_insert(0) += 1;
    }

    /// Which way connection attempts go, for telling a port given the wrong way round.
    #[cold]
    #[inline(never)]
    fn count_syn(&mut self, to_upstream: bool, acked: bool, dport: u16) {
        match (to_upstream, acked) {
            (true, false) => self.stats.syns_to_upstream += 1,
            (false, false) => *self.stats.syns_from_upstream.entry(dport).or_insert(0) += 1,
            (true, true) => self.stats.syn_acks_to_upstream += 1,
            (false, true) => {}
        }
    }

    /// A new connection for the tuple, finishing the one it had (`reused`).
    #[cold]
    #[inline(never)]
    fn open_new(
        &mut self,
        key: Key,
        reused: bool,
        seg: &Segment,
        payload: &[u8],
        to_srv: bool,
        done: &mut Vec<TcpConnection>,
    ) {
        if reused {
            if let Some(old) = self.remove(&key) {
                done.push(old.finish());
            }
        }
        let client_syn = to_srv && seg.flags & (SYN | ACK) == SYN;
        let id = self.new_id(seg);
        let mut c = Conn::new(key, id, seg, self.live);
        if client_syn {
            c.client_isn = Some(seg.seq);
        }
        c.add(seg, payload, to_srv);
        let at = self.conns.len() as u32;
        self.table.insert(key, at);
        self.conns.push(c);
        if let Some(h) = self.hints.get_mut(hint_slot(&key)) {
            *h = at;
        }
    }

    /// A client SYN with another ISN than the tuple's connection `at` has, which is not over.
    /// A retransmission of a parked attempt goes to it (and it becomes the tuple's connection
    /// if that one has only SYNs too); otherwise it is a new attempt: the tuple's connection
    /// if the one there has only SYNs (that one is parked) or has closed (port reuse: it is
    /// finished), parked beside an established connection that has not (a stray or forged SYN
    /// does not end a connection; its SYN-ACK would).
    #[cold]
    #[inline(never)]
    fn other_attempt(
        &mut self,
        at: usize,
        key: Key,
        seg: &Segment,
        payload: &[u8],
        done: &mut Vec<TcpConnection>,
    ) {
        let Some(current) = self.conns.get(at) else {
            return;
        };
        let (attempt_only, closed) = (current.attempt_only(), current.closed != 0);
        // the attempt the SYN belongs to, and whether it may take the tuple's place
        let (mut c, replaces) = match self.unpark(key, |p| p.client_isn == Some(seg.seq)) {
            Some(other) => (other, attempt_only),
            None => {
                let id = self.new_id(seg);
                let mut c = Conn::new(key, id, seg, self.live);
                c.client_isn = Some(seg.seq);
                (c, attempt_only || closed)
            }
        };
        c.add(seg, payload, true);
        if replaces {
            self.make_current(at, key, c, done);
        } else {
            self.park(key, c, done);
        }
    }

    /// A SYN-ACK that does not acknowledge the ISN of the tuple's connection `at`: if it
    /// acknowledges a parked attempt's, that attempt was the one accepted and becomes the
    /// tuple's connection.
    #[cold]
    #[inline(never)]
    fn answered_attempt(
        &mut self,
        at: usize,
        key: Key,
        seg: &Segment,
        payload: &[u8],
        done: &mut Vec<TcpConnection>,
    ) {
        let accepted = |p: &Conn| p.client_isn.map(|isn| isn.wrapping_add(1)) == Some(seg.ack);
        match self.unpark(key, accepted) {
            Some(mut other) => {
                other.add(seg, payload, false);
                self.make_current(at, key, other, done);
            }
            None => {
                if let Some(c) = self.conns.get_mut(at) {
                    c.add(seg, payload, false);
                }
            }
        }
    }

    /// The tuple's parked attempt `which` picks, taken out.
    fn unpark(&mut self, key: Key, which: impl Fn(&Conn) -> bool) -> Option<Conn> {
        let parked = self.parked.get_mut(&key)?;
        let c = parked.remove(parked.iter().position(which)?);
        if parked.is_empty() {
            self.parked.remove(&key);
        }
        Some(c)
    }

    /// `c` in place of the tuple's connection at `at`, which is parked if it has only SYNs
    /// and finished otherwise.
    fn make_current(&mut self, at: usize, key: Key, c: Conn, done: &mut Vec<TcpConnection>) {
        let Some(slot) = self.conns.get_mut(at) else {
            return;
        };
        let old = std::mem::replace(slot, c);
        if old.attempt_only() {
            self.park(key, old, done);
        } else {
            done.push(old.finish());
        }
    }

    /// Attempts parked per tuple: beyond this many the oldest is finished, so a flood of SYNs
    /// on one tuple costs bounded memory and time.
    const PARKED_PER_TUPLE: usize = 8;

    fn park(&mut self, key: Key, c: Conn, done: &mut Vec<TcpConnection>) {
        let parked = self.parked.entry(key).or_default();
        if parked.len() >= Self::PARKED_PER_TUPLE {
            done.push(parked.remove(0).finish());
        }
        parked.push(c);
    }

    /// Take a connection out; the last one moves into its place.
    fn remove(&mut self, key: &Key) -> Option<Conn> {
        let at = self.table.remove(key)? as usize;
        if at >= self.conns.len() {
            return None;
        }
        let c = self.conns.swap_remove(at);
        if let Some(moved) = self.conns.get(at) {
            if let Some(slot) = self.table.get_mut(&moved.key) {
                *slot = at as u32;
            }
        }
        Some(c)
    }

    /// Every connection over and quiet, or silent, as of now (oldest first).
    #[cold]
    #[inline(never)]
    fn sweep(&mut self, done: &mut Vec<TcpConnection>) {
        let (now, linger, following) = (self.now, self.linger_ns, self.following);
        let mut due: Vec<(u64, Key)> = self
            .conns
            .iter()
            .filter(|c| c.expired(now, linger, following))
            .map(|c| (c.id, c.key))
            .collect();
        due.sort_unstable_by_key(|d| d.0);
        for (_, key) in due {
            if let Some(c) = self.remove(&key) {
                done.push(c.finish());
            }
        }
        if !self.parked.is_empty() {
            let mut gone: Vec<Conn> = Vec::new();
            self.parked.retain(|_, list| {
                let (old, keep): (Vec<Conn>, Vec<Conn>) = list
                    .drain(..)
                    .partition(|c| c.expired(now, linger, following));
                gone.extend(old);
                *list = keep;
                !list.is_empty()
            });
            gone.sort_unstable_by_key(|c| c.id);
            done.extend(gone.into_iter().map(Conn::finish));
        }
        self.next_sweep = now.saturating_add(SWEEP_NS);
        self.since_sweep = 0;
    }

    /// The capture ended: every connection still open, in id order; and the counts.
    pub fn finish(self, done: &mut Vec<TcpConnection>) -> TcpStats {
        let (stats, rest) = self.finish_lazily();
        done.extend(rest);
        stats
    }

    /// The same, each connection finished only when taken: most of a keepalive capture's
    /// connections are still open at its end, and finished all at once each would be held
    /// twice (as it was, and as its streams) until labelled.
    pub fn finish_lazily(mut self) -> (TcpStats, impl Iterator<Item = TcpConnection>) {
        let mut all = std::mem::take(&mut self.conns);
        all.extend(self.parked.drain().flat_map(|(_, list)| list));
        all.sort_unstable_by_key(|c| c.id);
        (self.stats, all.into_iter().map(Conn::finish))
    }
}
