//! The binding: `pcapkit._core`. It only converts; every decision is made in `kaflow-core`.
//!
//! Errors leave as `pcapkit.errors` classes with the core's one-line message. A panic in the
//! core (a bug) is caught where the core runs and becomes a one-line `KaflowError` too, so no
//! Rust panic ever reaches the user as a crash.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kaflow_core::batch::{
    format_ip, keyed_rows as core_keyed_rows, request_key as core_request_key, Batch as CoreBatch,
    Connections as CoreConnections,
};
use kaflow_core::capture::{
    CaptureError, CaptureInfo, Edge, ErrorKind, FileInfo, Mode, Reader, Window,
};
use kaflow_core::export::{
    connection_json as core_connection_json, csv_rows as core_csv_rows, AnomalyText,
    ConnectionText, EventText, RequestText, CSV_KEY, EVENT_TYPES, SIDES,
};
use kaflow_core::flow::TcpStats;
use kaflow_core::scan::Scanner;
use kaflow_core::segment::Segment;
use pyo3::exceptions::{PyIndexError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// Batches the core may run ahead of Python by: enough to keep both threads busy.
const AHEAD: usize = 4;

fn error_class(kind: Option<ErrorKind>) -> &'static str {
    match kind {
        Some(ErrorKind::Input) => "InputError",
        Some(ErrorKind::NotACapture) => "NotACaptureError",
        Some(ErrorKind::Compressed) => "CompressedCaptureError",
        Some(ErrorKind::UnsupportedLinkType) => "UnsupportedLinkTypeError",
        Some(ErrorKind::Empty) => "EmptyCaptureError",
        Some(ErrorKind::Malformed) => "MalformedCaptureError",
        Some(ErrorKind::Overlap) => "NotOneCaptureError",
        None => "KaflowError",
    }
}

/// What the core's thread can fail with: a capture error, or a caught panic (a bug).
enum Failure {
    Capture(CaptureError),
    Bug(String),
}

impl Failure {
    fn into_py(self, py: Python<'_>) -> PyErr {
        let (class, message) = match self {
            Failure::Capture(e) => (error_class(Some(e.kind)), e.message),
            Failure::Bug(what) => (
                error_class(None),
                format!(
                    "internal error in kaflow's core ({what}); please report it with the capture"
                ),
            ),
        };
        match py
            .import("pcapkit.errors")
            .and_then(|m| m.getattr(class))
            .and_then(|cls| cls.call1((message,)))
        {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
        .lines()
        .next()
        .unwrap_or("panic")
        .to_string()
}

/// Runs `f`, turning a panic into a [`Failure::Bug`].
fn guarded<T>(f: impl FnOnce() -> Result<T, CaptureError>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Capture(e)),
        Err(payload) => Err(Failure::Bug(panic_text(payload.as_ref()))),
    }
}

/// One Python string per distinct text in a batch: a method, a host, a target or a name is
/// made once and shared by every row that has it (a request's event and its request share the
/// target), which saves both the making and the memory.
#[derive(Default)]
struct Strings(HashMap<Box<str>, Py<PyString>>);

impl Strings {
    fn get(&mut self, py: Python<'_>, text: &str) -> Py<PyString> {
        if let Some(s) = self.0.get(text) {
            return s.clone_ref(py);
        }
        let s = PyString::new(py, text).unbind();
        self.0.insert(text.into(), s.clone_ref(py));
        s
    }
}

/// A column of the core's batch as a Python list.
trait Column {
    fn list(self, py: Python<'_>, strings: &mut Strings) -> PyResult<Py<PyList>>;
}

macro_rules! plain_column {
    ($($t:ty),*) => {$(
        impl Column for Vec<$t> {
            fn list(self, py: Python<'_>, _: &mut Strings) -> PyResult<Py<PyList>> {
                Ok(PyList::new(py, self)?.unbind())
            }
        }
    )*};
}

plain_column!(u8, u16, u32, u64, i64, bool, Option<u64>, Option<i64>);

macro_rules! text_column {
    ($($t:ty),*) => {$(
        impl Column for Vec<$t> {
            fn list(self, py: Python<'_>, strings: &mut Strings) -> PyResult<Py<PyList>> {
                let items: Vec<Py<PyString>> = self.iter().map(|s| strings.get(py, s)).collect();
                Ok(PyList::new(py, items)?.unbind())
            }
        }

        impl Column for Vec<Option<$t>> {
            fn list(self, py: Python<'_>, strings: &mut Strings) -> PyResult<Py<PyList>> {
                let items: Vec<Option<Py<PyString>>> = self
                    .iter()
                    .map(|s| s.as_ref().map(|s| strings.get(py, s)))
                    .collect();
                Ok(PyList::new(py, items)?.unbind())
            }
        }
    )*};
}

text_column!(String, &'static str);

macro_rules! columns {
    ($(#[$doc:meta])* $name:ident from $core:ty { $($field:ident),* $(,)? }) => {
        $(#[$doc])*
        #[pyclass(frozen, module = "pcapkit._core")]
        pub struct $name {
            $(#[pyo3(get)] $field: Py<PyList>,)*
        }

        impl $name {
            fn convert(py: Python<'_>, b: $core) -> PyResult<Self> {
                let mut strings = Strings::default();
                Ok($name { $($field: b.$field.list(py, &mut strings)?,)* })
            }
        }
    };
}

columns! {
    /// One entry per connection of a batch (see `pcapkit/_core.pyi`).
    Connections from CoreConnections {
        conn_id, conn_ip_version, conn_client, conn_server, conn_client_port, conn_opened_at_ns,
        conn_first_frame, conn_opened_by, conn_established_at_ns, conn_handshake_ack_ns,
        conn_closed_by, conn_close,
        conn_closed_at_ns, conn_last_seen_ns, conn_last_response_ns, conn_partial, conn_state,
        conn_history, conn_syn_count, conn_packets, conn_client_bytes, conn_server_bytes,
        conn_retransmissions, conn_events, conn_requests, conn_anomalies, conn_responses,
        conn_unanswered, conn_last_close, conn_last_answered_close, conn_tunnel, conn_keep_alive, conn_server_header, conn_request_headers, conn_one_sided,
        conn_tls,
        conn_requests_close, conn_server_close,
        conn_server_close_ns, conn_server_close_frame,
    }
}

/// Finished connections: their per-connection columns at once, the rest when asked for.
#[pyclass(frozen, module = "pcapkit._core")]
pub struct Batch {
    rows: CoreBatch,
    #[pyo3(get)]
    connections: Py<Connections>,
    /// `rows.request_rows()` as bytes, made on the core's thread.
    requests: Vec<u8>,
    /// Where the rows go once Python lets the batch go: the core's thread frees them. Freeing
    /// a batch's events, requests and strings took 11 µs a connection on the Python thread,
    /// whose work is the end of every run.
    spent: Sender<CoreBatch>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        // once the core's thread has ended the rows come back, and are freed here
        let _ = self.spent.send(std::mem::take(&mut self.rows));
    }
}

#[pymethods]
impl Batch {
    fn __len__(&self) -> usize {
        self.rows.len()
    }

    /// Each connection at these positions as the pickle of its plain values.
    fn records<'py>(
        &self,
        py: Python<'py>,
        which: Vec<usize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let rows = &self.rows;
        let got = py.detach(|| rows.records(&which));
        let records = got.ok_or_else(|| PyIndexError::new_err("no connection at that position"))?;
        Ok(records.iter().map(|r| PyBytes::new(py, r)).collect())
    }

    /// The JSON report's line of each connection at these positions, UTF-8.
    fn json_lines<'py>(
        &self,
        py: Python<'py>,
        which: Vec<usize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let mut lines = Vec::with_capacity(which.len());
        let got = self
            .rows
            .json_lines(&which, |l| lines.push(PyBytes::new(py, l.as_bytes())));
        got.ok_or_else(|| PyIndexError::new_err("no connection at that position"))?;
        Ok(lines)
    }

    /// The CSV spool's record of each connection at these positions (see the stub): made
    /// whole here, as one bytes each, rather than joined from two in Python.
    fn csv_records<'py>(
        &self,
        py: Python<'py>,
        which: Vec<usize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let mut records = Vec::with_capacity(which.len());
        let mut record = Vec::new();
        let got = self.rows.csv_rows(&which, |text, keys| {
            record.clear();
            record.extend_from_slice(&(keys.len() as u64 * 8).to_le_bytes());
            extend_ne(&mut record, keys);
            record.extend_from_slice(text.as_bytes());
            records.push(PyBytes::new(py, &record));
        });
        got.ok_or_else(|| PyIndexError::new_err("no connection at that position"))?;
        Ok(records)
    }

    /// Every request's retry-index row, six native int64s each (see the stub).
    fn request_rows<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.requests)
    }

    /// Following a live capture: capture time when the batch was made.
    #[getter]
    fn now_ns(&self) -> Option<i64> {
        self.rows.now_ns
    }

    /// Following a live capture: the same rows for the requests framed since the batch before
    /// on connections still open; empty otherwise.
    fn open_request_rows<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        int64s(py, &self.rows.open_rows)
    }
}

impl Batch {
    /// `columns` are `rows.connections()` and `requests` its request rows, made on the core's
    /// thread, off the GIL.
    fn convert(
        py: Python<'_>,
        (rows, columns, requests): (CoreBatch, CoreConnections, Vec<u8>),
        spent: Sender<CoreBatch>,
    ) -> PyResult<Self> {
        let connections = Py::new(py, Connections::convert(py, columns)?)?;
        Ok(Batch {
            rows,
            connections,
            requests,
            spent,
        })
    }
}

fn int64s<'py>(py: Python<'py>, values: &[i64]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &ne_bytes(values))
}

/// int64s as the bytes of an `array('q')`.
fn ne_bytes(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len().saturating_mul(8));
    extend_ne(&mut out, values);
    out
}

/// [`ne_bytes`] of `values`, added to `out`.
fn extend_ne(out: &mut Vec<u8>, values: &[i64]) {
    for v in values {
        out.extend_from_slice(&v.to_ne_bytes());
    }
}

/// A `pcapkit.model.Event`, read by attribute.
#[derive(FromPyObject)]
struct PyEvent {
    time_ns: i64,
    #[pyo3(attribute("type"))]
    kind: String,
    side: String,
    frame: u64,
    method: Option<String>,
    target: Option<String>,
    host: Option<String>,
    status: Option<u16>,
    connection_close: bool,
    request_index: Option<u64>,
    length: Option<i64>,
    note: Option<String>,
}

/// A `pcapkit.model.Request`, read by attribute.
#[derive(FromPyObject)]
struct PyRequest {
    method: Option<String>,
    target: Option<String>,
    host: Option<String>,
    sent_at_ns: i64,
    frame: u64,
    status: Option<u16>,
    responded_at_ns: Option<i64>,
    connection_close: bool,
    request_id: Option<String>,
}

/// A `pcapkit.model.Anomaly`, read by attribute.
#[derive(FromPyObject)]
struct PyAnomaly {
    time_ns: i64,
    frame: u64,
    side: String,
    what: String,
}

/// A `pcapkit.model.Connection` a library user holds, read by attribute: the reports write it
/// with the same encoder as the connections the core hands over.
#[derive(FromPyObject)]
struct PyConnection {
    id: u64,
    client: String,
    server: String,
    opened_at_ns: i64,
    first_frame: u64,
    opened_by: Option<String>,
    established_at_ns: Option<i64>,
    closed_by: Option<String>,
    close: Option<String>,
    closed_at_ns: Option<i64>,
    last_seen_ns: i64,
    partial: bool,
    state: String,
    history: String,
    packets: u64,
    retransmissions: u64,
    client_bytes: u64,
    server_bytes: u64,
    requests: Vec<PyRequest>,
    events: Vec<PyEvent>,
    anomalies: Vec<PyAnomaly>,
    tunnel: Option<String>,
    keep_alive: Option<String>,
    server_header: Option<String>,
    one_sided: Option<String>,
    tls: Option<String>,
}

impl PyConnection {
    fn text(&self) -> ConnectionText<'_> {
        ConnectionText {
            id: self.id,
            client: &self.client,
            server: &self.server,
            opened_at_ns: self.opened_at_ns,
            first_frame: self.first_frame,
            opened_by: self.opened_by.as_deref(),
            established_at_ns: self.established_at_ns,
            closed_by: self.closed_by.as_deref(),
            close: self.close.as_deref(),
            closed_at_ns: self.closed_at_ns,
            last_seen_ns: self.last_seen_ns,
            partial: self.partial,
            state: &self.state,
            history: &self.history,
            packets: self.packets,
            retransmissions: self.retransmissions,
            client_bytes: self.client_bytes,
            server_bytes: self.server_bytes,
            requests: self
                .requests
                .iter()
                .map(|r| RequestText {
                    method: r.method.as_deref(),
                    target: r.target.as_deref(),
                    host: r.host.as_deref(),
                    sent_at_ns: r.sent_at_ns,
                    frame: r.frame,
                    status: r.status,
                    responded_at_ns: r.responded_at_ns,
                    connection_close: r.connection_close,
                    request_id: r.request_id.as_deref(),
                })
                .collect(),
            events: self
                .events
                .iter()
                .map(|e| EventText {
                    time_ns: e.time_ns,
                    kind: &e.kind,
                    side: &e.side,
                    frame: e.frame,
                    method: e.method.as_deref(),
                    target: e.target.as_deref(),
                    host: e.host.as_deref(),
                    status: e.status,
                    connection_close: e.connection_close,
                    request_index: e.request_index,
                    length: e.length,
                    note: e.note.as_deref(),
                })
                .collect(),
            anomalies: self
                .anomalies
                .iter()
                .map(|a| AnomalyText {
                    time_ns: a.time_ns,
                    frame: a.frame,
                    side: &a.side,
                    what: &a.what,
                })
                .collect(),
            tunnel: self.tunnel.as_deref(),
            keep_alive: self.keep_alive.as_deref(),
            server_header: self.server_header.as_deref(),
            one_sided: self.one_sided.as_deref(),
            tls: self.tls.as_deref(),
        }
    }
}

/// The JSON report's line of a `Connection` object, UTF-8 (as `Batch.json_lines` writes it).
#[pyfunction]
fn connection_json<'py>(py: Python<'py>, conn: PyConnection) -> Bound<'py, PyBytes> {
    let mut out = String::new();
    core_connection_json(&mut out, &conn.text());
    PyBytes::new(py, out.as_bytes())
}

/// The CSV report's rows of a `Connection` object and their keys (as `Batch.csv_rows`).
#[pyfunction]
fn connection_csv<'py>(
    py: Python<'py>,
    conn: PyConnection,
) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
    let (mut out, mut keys) = (String::new(), Vec::new());
    core_csv_rows(&mut out, &mut keys, &conn.text());
    (PyBytes::new(py, out.as_bytes()), int64s(py, &keys))
}

/// The key [`Batch::request_rows`] gives a request: what retry matching compares.
#[pyfunction]
#[pyo3(signature = (method, target, host, request_id=None))]
fn request_key(method: &str, target: &str, host: Option<&str>, request_id: Option<&str>) -> i64 {
    i64::from_ne_bytes(core_request_key(method, target, host, request_id).to_ne_bytes())
}

/// The request rows among `rows` whose key is in `keys` (`kaflow_core::batch::keyed_rows`).
#[pyfunction]
fn keyed_rows<'py>(py: Python<'py>, rows: &[u8], keys: HashSet<i64>) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &core_keyed_rows(rows, &keys))
}

/// One file of the capture as read.
#[pyclass(frozen, get_all, module = "pcapkit._core")]
pub struct FileFacts {
    path: String,
    format: String,
    link_types: Vec<String>,
    packets: u64,
    tcp_segments: u64,
    bytes_read: u64,
    truncated_at_offset: Option<u64>,
    first_ts_ns: Option<i64>,
    last_ts_ns: Option<i64>,
    first_frame: u64,
    last_frame: u64,
    warnings: Vec<String>,
}

impl FileFacts {
    fn new(f: &FileInfo) -> FileFacts {
        let i = &f.info;
        FileFacts {
            path: i.path.clone(),
            format: i.format.clone(),
            link_types: i.link_types.clone(),
            packets: i.packets,
            tcp_segments: i.tcp_segments,
            bytes_read: i.bytes_read,
            truncated_at_offset: i.truncated_at_offset,
            first_ts_ns: i.first_ts_ns,
            last_ts_ns: i.last_ts_ns,
            first_frame: f.first_frame,
            last_frame: f.last_frame,
            warnings: i.warnings.clone(),
        }
    }
}

/// What was read of the capture and what reconstruction counted.
#[pyclass(frozen, get_all, module = "pcapkit._core")]
pub struct CaptureFacts {
    path: String,
    format: String,
    link_types: Vec<String>,
    ts_resolution_ns: i64,
    bytes_read: u64,
    truncated_at_offset: Option<u64>,
    packets: u64,
    tcp_segments: u64,
    skipped: Vec<(String, u64)>,
    first_ts_ns: Option<i64>,
    last_ts_ns: Option<i64>,
    warnings: Vec<String>,
    upstream_segments: u64,
    other_ports: u64,
    other_port_counts: Vec<(u16, u64)>,
    syns_to_upstream: u64,
    syns_from_upstream: Vec<(u16, u64)>,
    ts_backwards: u64,
    ts_max_back_ns: i64,
    syn_acks_to_upstream: u64,
    files: Vec<Py<FileFacts>>,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    outside_window: u64,
}

impl CaptureFacts {
    fn new(path: &str, info: &CaptureInfo, stats: &TcpStats) -> CaptureFacts {
        CaptureFacts {
            files: Vec::new(),
            since_ns: None,
            until_ns: None,
            outside_window: 0,
            path: path.to_string(),
            format: info.format.to_string(),
            link_types: info.link_types.clone(),
            ts_resolution_ns: info.ts_resolution_ns,
            bytes_read: info.bytes_read,
            truncated_at_offset: info.truncated_at_offset,
            packets: info.packets,
            tcp_segments: info.tcp_segments,
            skipped: info
                .skipped
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            first_ts_ns: info.first_ts_ns,
            last_ts_ns: info.last_ts_ns,
            warnings: info.warnings.clone(),
            upstream_segments: stats.upstream_segments,
            other_ports: stats.other_ports,
            syns_to_upstream: stats.syns_to_upstream,
            ts_backwards: info.ts_backwards,
            ts_max_back_ns: info.ts_max_back_ns,
            syn_acks_to_upstream: stats.syn_acks_to_upstream,
            syns_from_upstream: stats
                .syns_from_upstream
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
            other_port_counts: stats
                .other_port_counts
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
        }
    }
}

type Outcome = Result<Option<(CoreBatch, CoreConnections, Vec<u8>)>, Failure>;

/// The facts of a finished scan, files and window included: made once the scan has ended.
struct Finished {
    path: String,
    info: CaptureInfo,
    stats: TcpStats,
    files: Vec<FileInfo>,
    window: (Option<i64>, Option<i64>, u64),
}

impl Finished {
    fn facts(self, py: Python<'_>) -> PyResult<CaptureFacts> {
        let mut facts = CaptureFacts::new(&self.path, &self.info, &self.stats);
        for f in &self.files {
            facts.files.push(Py::new(py, FileFacts::new(f))?);
        }
        (facts.since_ns, facts.until_ns, facts.outside_window) = self.window;
        Ok(facts)
    }
}

/// The core's thread: it scans and hands batches over a bounded channel; facts when done.
#[pyclass(module = "pcapkit._core")]
pub struct Scan {
    batches: Mutex<Receiver<Outcome>>,
    spent: Sender<CoreBatch>,
    progress: Arc<(AtomicU64, AtomicU64)>,
    facts: Arc<Mutex<Option<Finished>>>,
    worker: Option<JoinHandle<()>>,
    done: bool,
}

fn run(
    mut scanner: Scanner,
    path: String,
    send: std::sync::mpsc::SyncSender<Outcome>,
    spent: Receiver<CoreBatch>,
    progress: Arc<(AtomicU64, AtomicU64)>,
    facts: Arc<Mutex<Option<Finished>>>,
) {
    loop {
        // the batches Python is done with are freed here, between batches
        spent.try_iter().for_each(drop);
        let next = guarded(|| scanner.next_batch()).map(|found| {
            found.map(|b| {
                let columns = b.connections();
                let requests = ne_bytes(&b.request_rows());
                (b, columns, requests)
            })
        });
        let (read, size) = scanner.progress();
        progress.0.store(read, Ordering::Relaxed);
        progress.1.store(size, Ordering::Relaxed);
        let end = !matches!(next, Ok(Some(_)));
        if matches!(next, Ok(None)) {
            let made = Finished {
                path: path.clone(),
                info: scanner.info(),
                stats: scanner.stats(),
                files: scanner.files(),
                window: scanner.window(),
            };
            if let Ok(mut slot) = facts.lock() {
                *slot = Some(made);
            }
        }
        if send.send(next).is_err() || end {
            return; // Python dropped the scan, or there is nothing more
        }
    }
}

#[pymethods]
impl Scan {
    #[new]
    #[pyo3(signature = (paths, ports, merge = false, since = None, until = None, follow = false))]
    fn new(
        py: Python<'_>,
        paths: Vec<PathBuf>,
        ports: Vec<u16>,
        merge: bool,
        since: Option<(String, i64)>,
        until: Option<(String, i64)>,
        follow: bool,
    ) -> PyResult<Scan> {
        let shown = paths
            .first()
            .map_or_else(String::new, |p| p.to_string_lossy().into_owned());
        let window = Window {
            since: bound(since)?,
            until: bound(until)?,
        };
        let mode = if merge { Mode::Force } else { Mode::Auto };
        let scanner = match (follow, paths.as_slice()) {
            (true, [path]) => Scanner::follow(path, &ports, window),
            (true, _) => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "follow reads one capture as it arrives",
                ))
            }
            (false, _) => py
                .detach(|| guarded(|| Scanner::open(&paths, &ports, mode, window)))
                .map_err(|f| f.into_py(py))?,
        };
        // following, a batch waits for Python as little as possible
        let (send, batches) = sync_channel(if follow { 1 } else { AHEAD });
        let (spent, spent_rx) = channel();
        let progress = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let facts = Arc::new(Mutex::new(None));
        let (p, f) = (Arc::clone(&progress), Arc::clone(&facts));
        let worker = std::thread::Builder::new()
            .name("kaflow-core".into())
            .spawn(move || run(scanner, shown, send, spent_rx, p, f))
            .map_err(|e| Failure::Bug(format!("cannot start a thread: {e}")).into_py(py))?;
        Ok(Scan {
            batches: Mutex::new(batches),
            spent,
            progress,
            facts,
            worker: Some(worker),
            done: false,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Batch> {
        if self.done {
            return Err(PyStopIteration::new_err(()));
        }
        let batches = &self.batches;
        let got = py.detach(|| batches.lock().ok().and_then(|rx| rx.recv().ok()));
        let outcome = got.unwrap_or_else(|| Err(Failure::Bug("the core's thread ended".into())));
        match outcome {
            Ok(Some(b)) => Batch::convert(py, b, self.spent.clone()),
            Ok(None) => {
                self.finish();
                Err(PyStopIteration::new_err(()))
            }
            Err(f) => {
                self.finish();
                Err(f.into_py(py))
            }
        }
    }

    /// (bytes of the file read so far, the file's size; 0 when unknown).
    fn progress(&self) -> (u64, u64) {
        (
            self.progress.0.load(Ordering::Relaxed),
            self.progress.1.load(Ordering::Relaxed),
        )
    }

    /// What was read, once iteration has ended.
    fn facts(&self, py: Python<'_>) -> PyResult<CaptureFacts> {
        let taken = self.facts.lock().ok().and_then(|mut slot| slot.take());
        taken
            .ok_or_else(|| {
                Failure::Bug("facts asked for before the scan ended".into()).into_py(py)
            })?
            .facts(py)
    }
}

/// A window edge from Python: `("at", ns since the epoch)` or `("after_start", ns)`.
fn bound(edge: Option<(String, i64)>) -> PyResult<Option<Edge>> {
    match edge {
        None => Ok(None),
        Some((kind, ns)) => match kind.as_str() {
            "at" => Ok(Some(Edge::At(ns))),
            "after_start" => Ok(Some(Edge::AfterStart(ns))),
            _ => Err(pyo3::exceptions::PyValueError::new_err(
                "a window edge is (\"at\" or \"after_start\", nanoseconds)",
            )),
        },
    }
}

impl Scan {
    fn finish(&mut self) {
        self.done = true;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The capture stage alone, in columns.
#[pyclass(frozen, get_all, module = "pcapkit._core")]
pub struct Segments {
    frame: Vec<u64>,
    ts_ns: Vec<i64>,
    ip_version: Vec<u8>,
    src: Vec<String>,
    dst: Vec<String>,
    sport: Vec<u16>,
    dport: Vec<u16>,
    seq: Vec<u32>,
    ack: Vec<u32>,
    flags: Vec<u8>,
    window: Vec<u16>,
    payload_len: Vec<u32>,
    payload: Vec<Py<PyBytes>>,
}

/// One segment and its captured payload, held while the GIL is released.
struct Held {
    seg: Segment,
    payload: Vec<u8>,
}

fn read_all(
    path: &std::path::Path,
    window_bytes: usize,
) -> Result<(Vec<Held>, CaptureInfo), CaptureError> {
    let mut reader = Reader::open_with_window(path, window_bytes)?;
    let mut held = Vec::new();
    while reader.next_window()? {
        for s in reader.segments() {
            held.push(Held {
                seg: *s,
                payload: reader.payload(s).to_vec(),
            });
        }
    }
    Ok((held, reader.info().clone()))
}

/// The capture stage alone, for tests and benchmarks: read without the GIL (the input may be a
/// pipe that a Python thread is writing), then converted.
#[pyfunction]
#[pyo3(signature = (path, window_bytes = 1048576))]
fn read_segments(
    py: Python<'_>,
    path: PathBuf,
    window_bytes: usize,
) -> PyResult<(Segments, CaptureFacts)> {
    let shown = path.to_string_lossy().into_owned();
    let (held, info) = py
        .detach(|| guarded(|| read_all(&path, window_bytes)))
        .map_err(|f| f.into_py(py))?;
    let mut out = Segments {
        frame: vec![],
        ts_ns: vec![],
        ip_version: vec![],
        src: vec![],
        dst: vec![],
        sport: vec![],
        dport: vec![],
        seq: vec![],
        ack: vec![],
        flags: vec![],
        window: vec![],
        payload_len: vec![],
        payload: vec![],
    };
    for Held { seg: s, payload } in &held {
        out.frame.push(s.frame);
        out.ts_ns.push(s.ts_ns);
        out.ip_version.push(s.ip_version);
        out.src.push(format_ip(&s.src, s.ip_version));
        out.dst.push(format_ip(&s.dst, s.ip_version));
        out.sport.push(s.sport);
        out.dport.push(s.dport);
        out.seq.push(s.seq);
        out.ack.push(s.ack);
        out.flags.push(s.flags);
        out.window.push(s.window);
        out.payload_len.push(s.payload_len);
        out.payload.push(PyBytes::new(py, payload).unbind());
    }
    let facts = CaptureFacts::new(&shown, &info, &TcpStats::default());
    Ok((out, facts))
}

/// The connection state machine as a Mermaid diagram, drawn from the core's one table.
#[pyfunction]
fn diagram() -> String {
    kaflow_core::machine::diagram()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Batch>()?;
    m.add_class::<Connections>()?;
    m.add_function(wrap_pyfunction!(request_key, m)?)?;
    m.add_function(wrap_pyfunction!(keyed_rows, m)?)?;
    m.add_function(wrap_pyfunction!(connection_json, m)?)?;
    m.add_function(wrap_pyfunction!(connection_csv, m)?)?;
    m.add("CSV_KEY", CSV_KEY)?;
    m.add(
        "EVENT_TYPES",
        PyTuple::new(m.py(), EVENT_TYPES.map(|t| t.as_str()))?,
    )?;
    m.add("SIDES", PyTuple::new(m.py(), SIDES.map(|s| s.as_str()))?)?;
    m.add_class::<CaptureFacts>()?;
    m.add_class::<FileFacts>()?;
    m.add_class::<Scan>()?;
    m.add_class::<Segments>()?;
    m.add_function(wrap_pyfunction!(read_segments, m)?)?;
    m.add_function(wrap_pyfunction!(diagram, m)?)?;
    Ok(())
}
