//! kaflow's core: a capture file in, finished and labelled connections out, as columns.
//!
//! Pure Rust, no Python: `cargo test` and `cargo fuzz` run on it alone; `kaflow-py` is the thin
//! binding that hands its results to the `pcapkit` package. The stages, each one module and one
//! plain value across each boundary:
//!
//! ```text
//! capture (Segment) → reassembly (TcpConnection) → label: http + machine (Labelled)
//!     → batch (columns)                      all driven by scan::Scanner
//! ```
//!
//! Reading a file, reassembly and labelling run in shards, a thread each (`shard`).

pub mod batch;
pub mod capture;
pub mod export;
pub mod flow;
pub mod follow;
pub mod http;
pub mod label;
pub mod machine;
pub mod pytext;
pub mod reassembly;
pub mod record;
pub mod scan;
pub mod segment;
pub mod shard;
pub mod tls;
pub mod zeek;
