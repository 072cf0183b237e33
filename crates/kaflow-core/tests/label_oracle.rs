//! Differential test against the Python reference (`pcapkit/label.py`, `http.py`, `machine.py`).
//!
//! `tests/oracle/dump.py` writes, as JSON lines, each TcpConnection Python reconstructed and the
//! Connection it labelled (or random framing cases with their rows and notes). Here every line is
//! relabelled in Rust and compared field by field. The committed golden files (the fixtures'
//! captures and a few hundred framing cases) always run; `KAFLOW_ORACLE_DIR=/some/dir` runs
//! every `*.jsonl` there too (generated captures are too big to commit).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use kaflow_core::flow::{Flow, Mark, Stream, TcpConnection};
use kaflow_core::http::{frame_rows, Kind, Message, Note};
use kaflow_core::label::{label, Labelled};
use serde_json::{json, Value};

fn hex(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let nib = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("bad hex"),
    };
    b.chunks(2).map(|p| nib(p[0]) << 4 | nib(p[1])).collect()
}

fn ints<T: TryFrom<i64>>(v: &Value) -> Vec<T> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let n = x.as_i64().unwrap();
            T::try_from(n).ok().unwrap()
        })
        .collect()
}

fn stream(v: &Value) -> Stream {
    Stream {
        starts: ints(&v["starts"]),
        lengths: ints(&v["lengths"]),
        ts: ints(&v["ts"]),
        frames: ints(&v["frames"]),
        captured: ints(&v["captured"]),
        data_starts: ints(&v["data_starts"]),
        data: hex(v["data"].as_str().unwrap()),
        ..Stream::default()
    }
}

fn mark(v: &Value) -> Option<Mark> {
    let a = v.as_array()?;
    Some(Mark {
        ts_ns: a[0].as_i64().unwrap(),
        frame: a[1].as_u64().unwrap(),
        offset: a[2].as_i64().unwrap(),
    })
}

fn flow(v: &Value) -> Flow {
    Flow {
        stream: stream(&v["stream"]),
        syn: mark(&v["syn"]),
        syn_count: v["syn_count"].as_u64().unwrap() as u32,
        fin: mark(&v["fin"]),
        rst: mark(&v["rst"]),
        packets: v["packets"].as_u64().unwrap(),
        retransmissions: v["retransmissions"].as_u64().unwrap(),
        bytes: v["bytes"].as_u64().unwrap(),
        missing: v["missing"].as_u64().unwrap(),
        last_ts_ns: v["last_ts_ns"].as_i64(),
        late_data: v["late_data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(mark)
            .collect(),
        ignored_rsts: v["ignored_rsts"].as_u64().unwrap(),
    }
}

fn tcpconn(v: &Value) -> TcpConnection {
    TcpConnection {
        id: v["id"].as_u64().unwrap(),
        ip_version: v["ip_version"].as_u64().unwrap() as u8,
        client_ip: [0; 16],
        server_ip: [0; 16],
        client_port: v["client_port"].as_u64().unwrap() as u16,
        server_port: v["server_port"].as_u64().unwrap() as u16,
        first_ts_ns: v["first_ts_ns"].as_i64().unwrap(),
        first_frame: v["first_frame"].as_u64().unwrap(),
        last_ts_ns: v["last_ts_ns"].as_i64().unwrap(),
        partial: v["partial"].as_bool().unwrap(),
        // Zeek's state and history come from the packets (`kaflow_core::zeek`), which the dumps
        // do not hold: not the labelling's to compare
        zeek_state: "",
        zeek_history: String::new(),
        handshake_ack_ns: None,
        to_server: flow(&v["to_server"]),
        to_client: flow(&v["to_client"]),
    }
}

/// The Rust result in the dump's shape.
fn labelled(c: &Labelled) -> Value {
    let events: Vec<Value> = c
        .events
        .iter()
        .map(|e| {
            json!([
                e.time_ns,
                e.kind.as_str(),
                e.side.as_str(),
                e.frame,
                e.method.as_deref(),
                e.target.as_deref(),
                e.host.as_deref(),
                e.status,
                e.connection_close,
                e.request_index,
                e.length,
                e.note.as_deref()
            ])
        })
        .collect();
    let requests: Vec<Value> = c
        .requests
        .iter()
        .map(|r| {
            json!([
                r.index,
                r.method.as_deref(),
                r.target.as_deref(),
                r.host.as_deref(),
                r.sent_at_ns,
                r.frame,
                r.status,
                r.responded_at_ns,
                r.response_frame,
                r.connection_close
            ])
        })
        .collect();
    let anomalies: Vec<Value> = c
        .anomalies
        .iter()
        .map(|a| json!([a.time_ns, a.frame, a.side.as_str(), a.what]))
        .collect();
    json!({
        "opened_by": c.opened_by.map(|s| s.as_str()),
        "established_at_ns": c.established_at_ns,
        "closed_by": c.closed_by.map(|s| s.as_str()),
        "close": c.close.map(|k| k.as_str()),
        "closed_at_ns": c.closed_at_ns,
        "last_response_ns": c.last_response_ns,
        "partial": c.partial,
        "syn_count": c.syn_count,
        "packets": c.packets,
        "client_bytes": c.client_bytes,
        "server_bytes": c.server_bytes,
        "retransmissions": c.retransmissions,
        "requests": requests,
        "events": events,
        "anomalies": anomalies,
    })
}

fn rows(messages: &[Message]) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| {
                json!([
                    m.offset,
                    m.ts_ns,
                    m.frame,
                    m.parsed,
                    m.method.as_deref(),
                    m.target.as_deref(),
                    m.host.as_deref(),
                    m.status,
                    m.connection_close,
                    m.length
                ])
            })
            .collect(),
    )
}

fn notes(notes: &[Note]) -> Value {
    Value::Array(
        notes
            .iter()
            .map(|n| json!([n.offset, n.ts_ns, n.frame, n.what]))
            .collect(),
    )
}

/// The first difference between two values, as a path and both sides.
fn diff(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .find_map(|(k, v)| diff(&format!("{path}.{k}"), v, b.get(k).unwrap_or(&Value::Null))),
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if let Some(d) = diff(&format!("{path}[{i}]"), x, y) {
                    return Some(d);
                }
            }
            (a.len() != b.len()).then(|| format!("{path}: {} items, got {}", a.len(), b.len()))
        }
        _ => {
            // serde_json keeps every non-negative integer alike, whatever type it came from
            let same = want == got;
            (!same).then(|| format!("{path}: want {want}, got {got}"))
        }
    }
}

/// (lines, matches) for one dump file, printing the first mismatches.
fn check_file(path: &Path) -> (usize, usize) {
    let file = BufReader::new(File::open(path).unwrap());
    let (mut total, mut ok) = (0, 0);
    for line in file.lines() {
        let line = line.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        total += 1;
        let problem = if v.get("tc").is_some() {
            let tc = tcpconn(&v["tc"]);
            let got = labelled(&label(&tc));
            let mut want = v["conn"].clone();
            if let Some(fields) = want.as_object_mut() {
                fields.remove("state");
                fields.remove("history");
            }
            diff("conn", &want, &got).map(|d| format!("connection {}: {d}", tc.id))
        } else {
            let kind = match v["kind"].as_str().unwrap() {
                "request" => Kind::Request,
                _ => Kind::Response,
            };
            let methods: Vec<Option<&str>> = v["methods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str())
                .collect();
            let (st, other) = (stream(&v["stream"]), stream(&v["other"]));
            let (m, n) = frame_rows(
                kind,
                &st,
                &other,
                &methods,
                v["midstream"].as_bool().unwrap(),
            );
            diff("rows", &v["rows"], &rows(&m))
                .or_else(|| diff("notes", &v["notes"], &notes(&n)))
                .map(|d| format!("case {total}: {d}"))
        };
        match problem {
            None => ok += 1,
            Some(p) if total - ok <= 5 => eprintln!("{}: {p}", path.display()),
            Some(_) => {}
        }
    }
    eprintln!("{}: {ok}/{total} match", path.display());
    (total, ok)
}

fn dump_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    files
}

#[test]
fn labelling_equals_the_python_reference() {
    let mut files = dump_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/golden"));
    if let Ok(dir) = std::env::var("KAFLOW_ORACLE_DIR") {
        files.extend(dump_files(Path::new(&dir)));
    }
    let mut bad = Vec::new();
    for f in &files {
        let (total, ok) = check_file(f);
        if ok != total {
            bad.push(format!("{}: {} of {total} differ", f.display(), total - ok));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
