//! A finished connection as the bytes of a Python pickle of plain values: what the Python side
//! keeps of a connection it may never read.
//!
//! The default report keeps every connection that lost a request (whether it was retried is
//! known only at the capture's end) and reads the timelines of twenty; a busy capture keeps
//! thousands, each with hundreds of events. Turning each into columns of Python objects, rows of
//! tuples and then a pickle cost more than the rest of the Python side's work on it; written
//! here, a kept connection costs the Python side nothing until it is read, and then one
//! `pickle.loads`. The value is `pcapkit.connections.Record`: a tuple of the connection's own
//! fields (`Connection`'s, in order, without the three lists), then its events, requests and
//! anomalies as lists of tuples of their fields in order.
//!
//! Only what those values need of the pickle protocol (4) is written: `None`, booleans, ints,
//! strings, tuples and lists.

use crate::batch::{endpoint, Finished};
use crate::label::{CloseKind, Side};

const PROTO: u8 = 0x80;
const STOP: u8 = b'.';
const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const LIST: u8 = b'l';
const NONE: u8 = b'N';
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const BININT: u8 = b'J';
const LONG1: u8 = 0x8a;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';

/// The opcodes of one pickle, appended to a buffer.
struct Pickle<'a>(&'a mut Vec<u8>);

impl Pickle<'_> {
    fn none(&mut self) {
        self.0.push(NONE);
    }

    fn bool(&mut self, b: bool) {
        self.0.push(if b { NEWTRUE } else { NEWFALSE });
    }

    fn int(&mut self, n: i128) {
        if let Ok(b) = u8::try_from(n) {
            self.0.extend_from_slice(&[BININT1, b]);
        } else if let Ok(w) = u16::try_from(n) {
            self.0.push(BININT2);
            self.0.extend_from_slice(&w.to_le_bytes());
        } else if let Ok(d) = i32::try_from(n) {
            self.0.push(BININT);
            self.0.extend_from_slice(&d.to_le_bytes());
        } else {
            // two's complement, little-endian, as few bytes as keep the sign (9 at most here)
            let bytes = n.to_le_bytes();
            let mut len = bytes.len();
            while len > 1 {
                let (last, below) = (bytes[len - 1], bytes[len - 2]);
                let redundant =
                    (last == 0 && below & 0x80 == 0) || (last == 0xff && below & 0x80 != 0);
                if !redundant {
                    break;
                }
                len -= 1;
            }
            self.0.extend_from_slice(&[LONG1, len as u8]);
            self.0.extend_from_slice(&bytes[..len]);
        }
    }

    fn str(&mut self, s: &str) {
        match u8::try_from(s.len()) {
            Ok(n) => self.0.extend_from_slice(&[SHORT_BINUNICODE, n]),
            Err(_) => {
                self.0.push(BINUNICODE);
                // a connection's strings are a head's fields: far below 4 GiB
                let n = u32::try_from(s.len()).unwrap_or(u32::MAX);
                self.0.extend_from_slice(&n.to_le_bytes());
            }
        }
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.none(),
        }
    }

    fn opt_int(&mut self, n: Option<impl Into<i128>>) {
        match n {
            Some(n) => self.int(n.into()),
            None => self.none(),
        }
    }

    /// The values `fill` writes, as one tuple (or, with `close` = [`LIST`], one list).
    fn group(&mut self, close: u8, fill: impl FnOnce(&mut Self)) {
        self.0.push(MARK);
        fill(self);
        self.0.push(close);
    }
}

/// Appends the pickle of `f`'s `pcapkit.connections.Record` to `out`.
pub fn connection_record(out: &mut Vec<u8>, f: &Finished) {
    let l = &f.labels;
    let v = f.ip_version;
    let mut p = Pickle(out);
    p.0.extend_from_slice(&[PROTO, 4]);
    p.group(TUPLE, |p| {
        p.group(TUPLE, |p| {
            p.int(f.id.into());
            p.str(&endpoint(&f.client_ip, v, f.client_port));
            p.str(&endpoint(&f.server_ip, v, f.server_port));
            p.int(f.client_port.into());
            p.int(v.into());
            p.int(f.first_ts_ns.into());
            p.int(f.first_frame.into());
            p.opt_str(l.opened_by.map(Side::as_str));
            p.opt_int(l.established_at_ns);
            p.opt_str(l.closed_by.map(Side::as_str));
            p.opt_str(l.close.map(CloseKind::as_str));
            p.opt_int(l.closed_at_ns);
            p.int(f.last_ts_ns.into());
            p.opt_int(l.last_response_ns);
            p.bool(l.partial);
            p.str(l.state);
            p.str(&l.history);
            p.int(l.syn_count.into());
            p.int(l.packets.into());
            p.int(l.client_bytes.into());
            p.int(l.server_bytes.into());
            p.int(l.retransmissions.into());
            p.opt_str(l.tunnel.as_deref());
            p.opt_str(l.keep_alive.as_deref());
            p.opt_str(l.server_header.as_deref());
            p.opt_str(l.one_sided.map(Side::as_str));
            p.opt_int(l.handshake_ack_ns);
            p.opt_str(l.tls);
        });
        p.group(LIST, |p| {
            for e in &l.events {
                p.group(TUPLE, |p| {
                    p.int(e.time_ns.into());
                    p.str(e.kind.as_str());
                    p.str(e.side.as_str());
                    p.int(e.frame.into());
                    p.opt_str(e.method.as_deref());
                    p.opt_str(e.target.as_deref());
                    p.opt_str(e.host.as_deref());
                    p.opt_int(e.status);
                    p.bool(e.connection_close);
                    p.opt_int(e.request_index.map(|i| i as u64));
                    p.opt_int(e.length);
                    p.opt_str(e.note.as_deref());
                });
            }
        });
        p.group(LIST, |p| {
            for r in &l.requests {
                p.group(TUPLE, |p| {
                    p.int((r.index as u64).into());
                    p.opt_str(r.method.as_deref());
                    p.opt_str(r.target.as_deref());
                    p.opt_str(r.host.as_deref());
                    p.int(r.sent_at_ns.into());
                    p.int(r.frame.into());
                    p.opt_int(r.status);
                    p.opt_int(r.responded_at_ns);
                    p.opt_int(r.response_frame);
                    p.bool(r.connection_close);
                    p.opt_str(r.request_id.as_deref());
                });
            }
        });
        p.group(LIST, |p| {
            for a in &l.anomalies {
                p.group(TUPLE, |p| {
                    p.int(a.time_ns.into());
                    p.int(a.frame.into());
                    p.str(a.side.as_str());
                    p.str(&a.what);
                });
            }
        });
    });
    p.0.push(STOP);
}

#[cfg(test)]
mod tests {
    use super::Pickle;

    fn int(n: i128) -> Vec<u8> {
        let mut out = Vec::new();
        Pickle(&mut out).int(n);
        out
    }

    #[test]
    fn ints_take_the_shortest_opcode_that_holds_them() {
        assert_eq!(int(0), [b'K', 0]);
        assert_eq!(int(255), [b'K', 255]);
        assert_eq!(int(256), [b'M', 0, 1]);
        assert_eq!(int(-1), [b'J', 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(int(1 << 31), [0x8a, 5, 0, 0, 0, 0x80, 0]);
        assert_eq!(int(-(1 << 31) - 1), [0x8a, 5, 0xff, 0xff, 0xff, 0x7f, 0xff]);
        assert_eq!(
            int(u64::MAX.into()),
            [0x8a, 9, 255, 255, 255, 255, 255, 255, 255, 255, 0]
        );
        assert_eq!(int(i64::MIN.into()), [0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    }

    #[test]
    fn strings_carry_their_utf8_length() {
        let mut out = Vec::new();
        Pickle(&mut out).str("é");
        assert_eq!(out, [0x8c, 2, 0xc3, 0xa9]);
        let long = "x".repeat(300);
        out.clear();
        Pickle(&mut out).str(&long);
        assert_eq!(out[..5], [b'X', 44, 1, 0, 0]);
        assert_eq!(out.len(), 5 + 300);
    }
}
