//! Finished connections as columns: what leaves the core.
//!
//! One entry per connection in the `conn_*` columns; events, requests and anomalies of all the
//! batch's connections one after the other in `ev_*`, `rq_*` and `an_*`, as many per connection
//! as `conn_events`, `conn_requests` and `conn_anomalies` say. Columns, not objects: the binding
//! hands each column over in one piece, and the Python side builds objects only from them.

use std::sync::Arc;

use crate::flow::TcpConnection;
use crate::label::{CloseKind, Labelled, Side};

/// The names the columns carry for the enumerations (the public API's vocabulary).
pub type Name = &'static str;

#[derive(Debug, Default)]
pub struct Batch {
    pub conn_id: Vec<u64>,
    pub conn_ip_version: Vec<u8>,
    pub conn_client: Vec<String>,
    pub conn_server: Vec<String>,
    pub conn_client_port: Vec<u16>,
    pub conn_opened_at_ns: Vec<i64>,
    pub conn_first_frame: Vec<u64>,
    pub conn_opened_by: Vec<Option<Name>>,
    pub conn_established_at_ns: Vec<Option<i64>>,
    pub conn_closed_by: Vec<Option<Name>>,
    pub conn_close: Vec<Option<Name>>,
    pub conn_closed_at_ns: Vec<Option<i64>>,
    pub conn_last_seen_ns: Vec<i64>,
    pub conn_last_response_ns: Vec<Option<i64>>,
    pub conn_partial: Vec<bool>,
    pub conn_state: Vec<Name>,
    pub conn_history: Vec<String>,
    pub conn_syn_count: Vec<u32>,
    pub conn_packets: Vec<u64>,
    pub conn_client_bytes: Vec<u64>,
    pub conn_server_bytes: Vec<u64>,
    pub conn_retransmissions: Vec<u64>,
    pub conn_events: Vec<u32>,
    pub conn_requests: Vec<u32>,
    pub conn_anomalies: Vec<u32>,
    pub ev_time_ns: Vec<i64>,
    pub ev_type: Vec<Name>,
    pub ev_side: Vec<Name>,
    pub ev_frame: Vec<u64>,
    pub ev_method: Vec<Option<Arc<str>>>,
    pub ev_target: Vec<Option<Arc<str>>>,
    pub ev_host: Vec<Option<Arc<str>>>,
    pub ev_status: Vec<Option<u16>>,
    pub ev_connection_close: Vec<bool>,
    pub ev_request_index: Vec<Option<u32>>,
    pub ev_length: Vec<Option<i64>>,
    pub ev_note: Vec<Option<String>>,
    pub rq_index: Vec<u32>,
    pub rq_method: Vec<Option<Arc<str>>>,
    pub rq_target: Vec<Option<Arc<str>>>,
    pub rq_host: Vec<Option<Arc<str>>>,
    pub rq_sent_at_ns: Vec<i64>,
    pub rq_frame: Vec<u64>,
    pub rq_status: Vec<Option<u16>>,
    pub rq_responded_at_ns: Vec<Option<i64>>,
    pub rq_response_frame: Vec<Option<u64>>,
    pub rq_connection_close: Vec<bool>,
    pub an_time_ns: Vec<i64>,
    pub an_frame: Vec<u64>,
    pub an_side: Vec<Name>,
    pub an_what: Vec<String>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.conn_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conn_id.is_empty()
    }
}

impl Batch {
    /// Adds one finished connection and its labels.
    pub fn push(&mut self, tc: &TcpConnection, l: &Labelled) {
        let v = tc.ip_version;
        self.conn_id.push(tc.id);
        self.conn_ip_version.push(v);
        self.conn_client
            .push(endpoint(&tc.client_ip, v, tc.client_port));
        self.conn_server
            .push(endpoint(&tc.server_ip, v, tc.server_port));
        self.conn_client_port.push(tc.client_port);
        self.conn_opened_at_ns.push(tc.first_ts_ns);
        self.conn_first_frame.push(tc.first_frame);
        self.conn_opened_by.push(l.opened_by.map(Side::as_str));
        self.conn_established_at_ns.push(l.established_at_ns);
        self.conn_closed_by.push(l.closed_by.map(Side::as_str));
        self.conn_close.push(l.close.map(CloseKind::as_str));
        self.conn_closed_at_ns.push(l.closed_at_ns);
        self.conn_last_seen_ns.push(tc.last_ts_ns);
        self.conn_last_response_ns.push(l.last_response_ns);
        self.conn_partial.push(l.partial);
        self.conn_state.push(l.state);
        self.conn_history.push(l.history.clone());
        self.conn_syn_count.push(l.syn_count);
        self.conn_packets.push(l.packets);
        self.conn_client_bytes.push(l.client_bytes);
        self.conn_server_bytes.push(l.server_bytes);
        self.conn_retransmissions.push(l.retransmissions);
        self.conn_events.push(count(l.events.len()));
        self.conn_requests.push(count(l.requests.len()));
        self.conn_anomalies.push(count(l.anomalies.len()));
        for e in &l.events {
            self.ev_time_ns.push(e.time_ns);
            self.ev_type.push(e.kind.as_str());
            self.ev_side.push(e.side.as_str());
            self.ev_frame.push(e.frame);
            self.ev_method.push(e.method.clone());
            self.ev_target.push(e.target.clone());
            self.ev_host.push(e.host.clone());
            self.ev_status.push(e.status);
            self.ev_connection_close.push(e.connection_close);
            self.ev_request_index.push(e.request_index.map(count));
            self.ev_length.push(e.length);
            self.ev_note.push(e.note.as_deref().map(str::to_owned));
        }
        for r in &l.requests {
            self.rq_index.push(count(r.index));
            self.rq_method.push(r.method.clone());
            self.rq_target.push(r.target.clone());
            self.rq_host.push(r.host.clone());
            self.rq_sent_at_ns.push(r.sent_at_ns);
            self.rq_frame.push(r.frame);
            self.rq_status.push(r.status);
            self.rq_responded_at_ns.push(r.responded_at_ns);
            self.rq_response_frame.push(r.response_frame);
            self.rq_connection_close.push(r.connection_close);
        }
        for a in &l.anomalies {
            self.an_time_ns.push(a.time_ns);
            self.an_frame.push(a.frame);
            self.an_side.push(a.side.as_str());
            self.an_what.push(a.what.clone());
        }
    }
}

/// A count that fits the column: a connection cannot hold 2^32 events of a capture whose
/// records are at least 16 bytes each, but saturate rather than wrap if one ever did.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An address as people write it: dotted IPv4, or IPv6 compressed as RFC 5952 has it (the
/// longest run of zero groups, the first of equal runs, as `::`). Unlike Rust's `Display`, an
/// IPv4-mapped IPv6 address stays hexadecimal (`::ffff:102:304`): a v6 packet is shown as v6.
pub fn format_ip(raw: &[u8; 16], version: u8) -> String {
    if version == 4 {
        return std::net::Ipv4Addr::new(raw[12], raw[13], raw[14], raw[15]).to_string();
    }
    let groups: Vec<u16> = raw
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    // the longest run of zero groups (at least two), the first of equal length
    let (mut best, mut best_len, mut run_start, mut run_len) = (0, 0, 0, 0);
    for (i, g) in groups.iter().enumerate() {
        if *g == 0 {
            if run_len == 0 {
                run_start = i;
            }
            run_len += 1;
            if run_len > best_len {
                best = run_start;
                best_len = run_len;
            }
        } else {
            run_len = 0;
        }
    }
    let hex = |gs: &[u16]| {
        gs.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return hex(&groups);
    }
    format!(
        "{}::{}",
        hex(&groups[..best]),
        hex(&groups[best + best_len..])
    )
}

/// `ip:port`, or `[ip]:port` for IPv6, as URLs and nginx's logs write them.
pub fn endpoint(raw: &[u8; 16], version: u8, port: u16) -> String {
    let ip = format_ip(raw, version);
    if version == 6 {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::format_ip;

    fn v6(text: &str) -> [u8; 16] {
        text.parse::<std::net::Ipv6Addr>()
            .map(|a| a.octets())
            .unwrap_or([0; 16])
    }

    #[test]
    fn ipv6_is_compressed_as_python_prints_it() {
        for (given, shown) in [
            ("::ffff:1.2.3.4", "::ffff:102:304"),
            ("fe80::1", "fe80::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("::", "::"),
            ("::1", "::1"),
            ("1::", "1::"),
            ("1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1"),
            ("2001:db8::ffff:1.2.3.4", "2001:db8::ffff:102:304"),
        ] {
            assert_eq!(format_ip(&v6(given), 6), shown);
        }
    }

    #[test]
    fn ipv4_is_the_mapped_addresses_last_four_bytes() {
        assert_eq!(format_ip(&v6("::ffff:192.168.1.10"), 4), "192.168.1.10");
    }
}
