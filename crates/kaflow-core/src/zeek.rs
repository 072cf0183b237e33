//! Zeek's `conn_state` and `history` for a connection, from its packets as Zeek's TCP analyzer
//! sees them, so a user can diff kaflow's answers with Zeek's `conn.log`.
//!
//! The rules are Zeek's (`src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc`: the endpoint
//! state machine, `update_history`, `update_last_seq`, `update_window`; the script
//! `base/protocols/conn/main.zeek`: `conn_state`), applied packet by packet in file order.
//! Where kaflow differs, on purpose:
//!
//! - the originator is always the client (nginx, the side not on the upstream port): Zeek
//!   guesses roles from the first packet and flips them (writing `^`), kaflow knows them;
//! - checksums are not checked: captures taken on a sending host carry the NIC's unfilled
//!   checksums, which Zeek counts (`C`) and drops unless run with `-C`; kaflow matches `zeek -C`;
//! - content gaps (`G`) are not written: kaflow reports the bytes a capture missed as anomalies;
//! - an endpoint's size, which Zeek reads off sequence numbers for one rule (`REJ` after RSTs
//!   both ways), is its payload bytes.

use crate::segment::{ACK, FIN, RST, SYN};

/// Zeek's TCP endpoint states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// History letters recorded once per direction (Zeek's `HIST_*` masks).
const SEEN_SYN: u8 = 1;
const SEEN_FIN: u8 = 2;
const SEEN_RST: u8 = 4;
const SEEN_ACK: u8 = 8;
const SEEN_DATA: u8 = 16;
const SEEN_FIN_RST: u8 = 32;
const SEEN_MULTI: u8 = 64;

/// Zeek's `TOO_LARGE_SEQ_DELTA`: a SYN or RST this far from where its side stands does not move it.
const TOO_LARGE: i32 = 1_048_576;

#[derive(Clone, Debug, Default)]
struct Endpoint {
    state: State,
    prev: State,
    start: u32,
    last: u32,
    seen: u8,
    last_syn: u32,
    last_fin: u32,
    last_rst: u32,
    /// Retransmissions and zero windows, and when each is next written (1, 10, 100...).
    rxmit: (u32, u32),
    zero_window: (u32, u32),
    bytes: u64,
}

impl Endpoint {
    fn set(&mut self, s: State) {
        self.prev = self.state;
        self.state = s;
    }

    fn inactive(&self) -> bool {
        matches!(self.state, State::Inactive | State::Partial)
    }
}

/// Zeek's view of one connection, fed its packets in file order.
#[derive(Clone, Debug, Default)]
pub struct Zeek {
    orig: Endpoint,
    resp: Endpoint,
    history: String,
}

fn letter(code: u8, orig: bool) -> char {
    let c = char::from(code);
    if orig {
        c
    } else {
        c.to_ascii_lowercase()
    }
}

impl Zeek {
    /// One packet: from the originator (the client) or not, its TCP flags, sequence and
    /// acknowledgment numbers, window and payload length.
    pub fn packet(
        &mut self,
        from_orig: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        window: u16,
        len: u32,
    ) {
        let (e, p) = if from_orig {
            (&mut self.orig, &mut self.resp)
        } else {
            (&mut self.resp, &mut self.orig)
        };
        let h = &mut self.history;
        let (syn, fin, rst, has_ack) = (
            flags & SYN != 0,
            flags & FIN != 0,
            flags & RST != 0,
            flags & ACK != 0,
        );
        // the sequence space it takes: a RST's data is not part of the stream (hostile lengths
        // wrap, as sequence numbers do)
        let flags_len = u32::from(syn) + u32::from(fin);
        let seg_len = if rst {
            flags_len
        } else {
            len.wrapping_add(flags_len)
        };
        let seq_end = seq.wrapping_add(seg_len);
        init_endpoint(e, syn, seq, seq_end);
        history(e, h, from_orig, flags, seq, len);
        if window == 0 && !rst && p.state != State::Closed && e.state != State::Reset {
            scaled(&mut e.zero_window, h, letter(b'W', from_orig));
        }
        if has_ack && p.state == State::Inactive {
            // the peer's numbering starts as if its SYN had been seen
            p.start = ack.wrapping_sub(1);
            p.last = ack.wrapping_sub(1);
        }
        let delta = seq_end.wrapping_sub(e.last) as i32;
        if (syn || rst) && !(-TOO_LARGE..=TOO_LARGE).contains(&delta) {
        } else if fin && e.last == e.start.wrapping_add(1) {
            e.last = seq_end;
        } else if e.state == State::Reset {
        } else if delta > 0 {
            e.last = seq_end;
        } else if len > 0 {
            scaled(&mut e.rxmit, h, letter(b'T', from_orig));
        }
        let orig_syn_sent = if from_orig {
            e.state == State::SynSent
        } else {
            p.state == State::SynSent
        };
        transition(e, p, from_orig, flags, len, orig_syn_sent);
        if !rst {
            e.bytes = e.bytes.saturating_add(u64::from(len));
        }
    }

    pub fn history(&self) -> &str {
        &self.history
    }

    /// Zeek's `conn_state`, from both endpoints' states.
    pub fn state(&self) -> &'static str {
        let (o, r) = (&self.orig, &self.resp);
        let (os, rs) = (o.state, r.state);
        if rs == State::Reset {
            if matches!(os, State::SynSent | State::SynAckSent)
                || (os == State::Reset && o.bytes == 0 && r.bytes == 0)
            {
                return "REJ";
            }
            return if o.inactive() { "RSTRH" } else { "RSTR" };
        }
        if os == State::Reset {
            if r.inactive() {
                return if self.rst_after_syn_only() {
                    "RSTOS0"
                } else {
                    "OTH"
                };
            }
            return "RSTO";
        }
        match (os, rs) {
            (State::Closed, State::Closed) => "SF",
            (State::Closed, _) => {
                if r.inactive() {
                    "SH"
                } else {
                    "S2"
                }
            }
            (_, State::Closed) => {
                if o.inactive() {
                    "SHR"
                } else {
                    "S3"
                }
            }
            (State::SynSent, State::Inactive) => "S0",
            (State::Established, State::Established) => "S1",
            _ => "OTH",
        }
    }

    /// Zeek's `/^\^?S[^HAFGIQ]*R.*/`: the originator's SYN, then its RST, nothing between.
    fn rst_after_syn_only(&self) -> bool {
        let h = self.history.strip_prefix('^').unwrap_or(&self.history);
        let Some(rest) = h.strip_prefix('S') else {
            return false;
        };
        match rest.find('R') {
            Some(at) => !rest[..at].contains(['H', 'A', 'F', 'G', 'I', 'Q']),
            None => false,
        }
    }
}

/// Zeek's `init_endpoint`: where an endpoint's numbering starts, on its first packet or a SYN.
fn init_endpoint(e: &mut Endpoint, syn: bool, seq: u32, seq_end: u32) {
    match e.state {
        State::Inactive => {
            if syn {
                e.start = seq;
                e.last = seq_end;
            } else {
                // as though a SYN had come just before: the first packet is not a duplicate
                e.start = seq.wrapping_sub(1);
                e.last = seq;
            }
        }
        State::SynSent | State::SynAckSent => {
            if syn && seq != e.start {
                e.start = seq;
                e.last = seq_end;
            }
        }
        State::Established | State::Partial => {
            if syn {
                e.start = seq;
                e.last = seq_end;
            }
        }
        State::Reset => {
            if syn && e.prev == State::Inactive {
                e.start = seq;
                e.last = seq_end;
            }
        }
        State::Closed => {}
    }
}

/// Zeek's `update_history`: the letters a packet adds.
fn history(e: &mut Endpoint, h: &mut String, orig: bool, flags: u8, seq: u32, len: u32) {
    let once = |e: &mut Endpoint, h: &mut String, mask: u8, code: u8| -> bool {
        if e.seen & mask == 0 {
            e.seen |= mask;
            h.push(letter(code, orig));
            false
        } else {
            true
        }
    };
    let (syn, fin, rst) = (flags & SYN != 0, flags & FIN != 0, flags & RST != 0);
    let bits = u8::from(syn) + u8::from(fin) + u8::from(rst);
    if bits > 1 {
        if fin && rst {
            once(e, h, SEEN_FIN_RST, b'I');
        } else {
            once(e, h, SEEN_MULTI, b'Q');
        }
        return;
    }
    if bits == 1 {
        if syn {
            let code = if flags & ACK != 0 { b'H' } else { b'S' };
            if once(e, h, SEEN_SYN, code) && seq != e.last_syn {
                h.push(letter(code, orig));
            }
            e.last_syn = seq;
        }
        if fin {
            let at = seq.wrapping_add(len);
            if once(e, h, SEEN_FIN, b'F') && at != e.last_fin {
                h.push(letter(b'F', orig));
            }
            e.last_fin = at;
        }
        if rst {
            if once(e, h, SEEN_RST, b'R') && seq != e.last_rst {
                h.push(letter(b'R', orig));
            }
            e.last_rst = seq;
        }
        return;
    }
    if len > 0 {
        once(e, h, SEEN_DATA, b'D');
    } else if flags & ACK != 0 {
        once(e, h, SEEN_ACK, b'A');
    }
}

/// Zeek's `ScaledHistoryEntry`: the letter once, then again at 10, 100, 1000... times.
fn scaled(count: &mut (u32, u32), h: &mut String, code: char) {
    if count.1 == 0 {
        count.1 = 1;
    }
    count.0 = count.0.wrapping_add(1);
    if count.0 == count.1 {
        h.push(code);
        match count.1.checked_mul(10) {
            Some(next) => count.1 = next,
            None => count.0 = 0,
        }
    }
}

/// Zeek's `UpdateStateMachine`: an endpoint's (and sometimes its peer's) next state.
fn transition(
    e: &mut Endpoint,
    p: &mut Endpoint,
    orig: bool,
    flags: u8,
    len: u32,
    orig_syn_sent: bool,
) {
    let (syn, fin, rst, ack) = (
        flags & SYN != 0,
        flags & FIN != 0,
        flags & RST != 0,
        flags & ACK != 0,
    );
    match e.state {
        State::Inactive => {
            if syn {
                if orig {
                    e.set(if ack {
                        State::SynAckSent
                    } else {
                        State::SynSent
                    });
                } else {
                    if p.state == State::SynSent {
                        p.set(State::Established);
                    }
                    e.set(State::Established);
                }
            }
            if fin {
                e.set(State::Closed);
            }
            if rst {
                e.set(State::Reset);
            }
            if e.state == State::Inactive {
                if !orig && len == 0 && orig_syn_sent {
                    // a stack that acks a SYN before answering it: not a partial connection
                } else if ack && p.state == State::Established {
                    e.set(State::Established);
                } else {
                    e.set(State::Partial);
                }
            }
        }
        State::SynSent | State::SynAckSent => {
            if fin {
                e.set(State::Closed);
            }
            if rst {
                e.set(State::Reset);
            }
        }
        State::Established | State::Partial => {
            if syn && e.state == State::Partial && p.state == State::Inactive && !ack {
                e.set(State::SynSent);
            }
            if fin && !rst {
                e.set(State::Closed);
                if p.state == State::Reset && p.prev == State::Closed {
                    // the peer's FIN then RST was a normal close after all
                    p.set(State::Closed);
                }
            }
            if rst {
                e.set(State::Reset);
            }
        }
        State::Closed => {
            if rst && p.state != State::Closed {
                e.set(State::Reset);
            }
        }
        State::Reset => {}
    }
}

#[cfg(test)]
mod tests {
    use super::Zeek;
    use crate::segment::{ACK, FIN, PSH, RST, SYN};

    /// (from the originator, flags, seq, ack, payload length) in order.
    fn run(packets: &[(bool, u8, u32, u32, u32)]) -> (String, &'static str) {
        let mut z = Zeek::default();
        for &(o, f, s, a, l) in packets {
            z.packet(o, f, s, a, 65535, l);
        }
        (z.history().to_string(), z.state())
    }

    const C: bool = true;
    const S: bool = false;

    fn handshake() -> Vec<(bool, u8, u32, u32, u32)> {
        vec![
            (C, SYN, 100, 0, 0),
            (S, SYN | ACK, 500, 101, 0),
            (C, ACK, 101, 501, 0),
        ]
    }

    #[test]
    fn a_request_answered_then_closed_by_the_client() {
        let mut p = handshake();
        p.extend([
            (C, PSH | ACK, 101, 501, 50),
            (S, ACK, 501, 151, 0),
            (S, PSH | ACK, 501, 151, 80),
            (C, ACK, 151, 581, 0),
            (C, FIN | ACK, 151, 581, 0),
            (S, FIN | ACK, 581, 152, 0),
            (C, ACK, 152, 582, 0),
        ]);
        assert_eq!(run(&p), ("ShADadFf".to_string(), "SF"));
    }

    #[test]
    fn closed_by_the_server_first_and_a_retransmission() {
        let mut p = handshake();
        p.extend([
            (C, PSH | ACK, 101, 501, 50),
            (C, PSH | ACK, 101, 501, 50), // the same bytes again
            (S, PSH | ACK, 501, 151, 80),
            (S, FIN | ACK, 581, 151, 0),
            (C, FIN | ACK, 151, 582, 0),
        ]);
        assert_eq!(run(&p), ("ShADTdfF".to_string(), "SF"));
    }

    #[test]
    fn unanswered_refused_and_reset() {
        assert_eq!(
            run(&[(C, SYN, 1, 0, 0), (C, SYN, 1, 0, 0)]),
            ("S".to_string(), "S0")
        );
        assert_eq!(
            run(&[(C, SYN, 1, 0, 0), (S, RST | ACK, 0, 2, 0)]),
            ("Sr".to_string(), "REJ")
        );
        assert_eq!(
            run(&[(C, SYN, 1, 0, 0), (C, RST, 2, 0, 0)]),
            ("SR".to_string(), "RSTOS0")
        );
        let mut p = handshake();
        p.push((S, RST | ACK, 501, 101, 0));
        assert_eq!(run(&p), ("ShAr".to_string(), "RSTR"));
    }

    #[test]
    fn a_connection_open_before_the_capture_closed_normally_is_sf() {
        let p = [
            (C, PSH | ACK, 1000, 9000, 50),
            (S, PSH | ACK, 9000, 1050, 80),
            (S, FIN | ACK, 9080, 1050, 0),
            (C, FIN | ACK, 1050, 9081, 0),
            (S, ACK, 9081, 1051, 0),
        ];
        assert_eq!(run(&p), ("DdfFa".to_string(), "SF"));
        // only its upstream's FIN seen: SHR; nothing closed: OTH
        assert_eq!(run(&p[..3]).1, "SHR");
        assert_eq!(run(&p[..2]).1, "OTH");
    }

    #[test]
    fn a_fin_retransmitted_is_one_letter_and_a_later_fin_another() {
        let mut p = handshake();
        p.extend([(C, FIN | ACK, 101, 501, 0), (C, FIN | ACK, 101, 501, 0)]);
        assert_eq!(run(&p).0, "ShAF");
        p.push((C, FIN | ACK, 300, 501, 0));
        assert_eq!(run(&p).0, "ShAFF");
    }

    #[test]
    fn retransmissions_are_written_at_1_10_and_100() {
        let mut p = handshake();
        p.push((C, PSH | ACK, 101, 501, 10));
        for _ in 0..100 {
            p.push((C, PSH | ACK, 101, 501, 10));
        }
        assert_eq!(run(&p).0, "ShADTTT");
    }
}
