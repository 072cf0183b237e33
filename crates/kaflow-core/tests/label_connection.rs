//! Labelling a whole connection: `tests/test_label.py`'s cases ported, values from the Python
//! reference.

use kaflow_core::flow::{Flow, Mark, Stream, TcpConnection};
use kaflow_core::label::{label, CloseKind, EventType, Side};

fn stream(data: &[u8], ts: i64, frame: u64) -> Stream {
    Stream {
        starts: vec![0],
        lengths: vec![data.len() as u32],
        ts: vec![ts],
        frames: vec![frame],
        captured: vec![data.len() as u32],
        data_starts: vec![0],
        data: data.to_vec(),
        ..Stream::default()
    }
}

fn mark(ts_ns: i64, frame: u64) -> Mark {
    Mark {
        ts_ns,
        frame,
        offset: 0,
    }
}

fn flow(stream: Stream, syn: Option<Mark>, fin: Option<Mark>, rst: Option<Mark>) -> Flow {
    let bytes = stream.data.len() as u64;
    Flow {
        stream,
        syn,
        syn_count: 1,
        fin,
        rst,
        packets: 1,
        retransmissions: 0,
        bytes,
        missing: 0,
        last_ts_ns: Some(10),
        late_data: vec![],
        ignored_rsts: 0,
    }
}

fn conn(up: Flow, down: Flow, partial: bool) -> TcpConnection {
    TcpConnection {
        id: 1,
        ip_version: 4,
        client_ip: [0; 16],
        server_ip: [0; 16],
        client_port: 1,
        server_port: 2,
        first_ts_ns: 10,
        first_frame: 1,
        last_ts_ns: 10,
        partial,
        zeek_state: "SF",
        zeek_history: "ShADadFf".to_string(),
        handshake_ack_ns: None,
        to_server: up,
        to_client: down,
    }
}

const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn events_sharing_a_packet_keep_the_type_order() {
    // A FIN carried by the packet of the last request and response, a SYN with data: events
    // with the same time and frame are ordered SYN, SYN-ACK, request, response, FIN, RST.
    let up = flow(
        stream(REQ, 10, 1),
        Some(mark(10, 1)),
        Some(mark(10, 1)),
        Some(mark(10, 1)),
    );
    let down = flow(
        stream(RESP, 10, 1),
        Some(mark(10, 1)),
        Some(mark(10, 1)),
        None,
    );
    let c = label(&conn(up, down, false));
    let kinds: Vec<_> = c.events.iter().map(|e| e.kind).collect();
    use EventType::*;
    assert_eq!(kinds, [Syn, SynAck, Request, Response, Fin, Fin, Rst]);
    // Zeek's state and history are the reconstruction's, from the packets: passed on as they are
    assert_eq!((c.state, c.history.as_str()), ("SF", "ShADadFf"));
    assert_eq!(
        (c.closed_by, c.close, c.closed_at_ns),
        (Some(Side::Client), Some(CloseKind::Fin), Some(10))
    );
    assert_eq!(c.last_response_ns, Some(10));
    assert_eq!(c.requests.len(), 1);
    assert_eq!(c.requests[0].status, Some(200));
    assert_eq!(c.events[3].request_index, Some(0));
    // a RST after both FINs answers a late segment: no anomaly
    assert!(c.anomalies.is_empty());
}

#[test]
fn a_response_before_every_request_answered_one_from_before_the_capture() {
    let up = flow(stream(REQ, 20, 3), None, None, None);
    let down = flow(stream(&[RESP, RESP].concat(), 15, 2), None, None, None);
    let c = label(&conn(up, down, true));
    assert_eq!(c.opened_by, None);
    let idx: Vec<_> = c.events.iter().map(|e| (e.kind, e.request_index)).collect();
    assert_eq!(
        idx,
        [
            (EventType::Response, None),
            (EventType::Response, None),
            (EventType::Request, Some(0))
        ]
    );
    assert_eq!(c.requests.len(), 1);
    assert_eq!(c.requests[0].responded_at_ns, None);
    assert!(c.anomalies.is_empty());
}
