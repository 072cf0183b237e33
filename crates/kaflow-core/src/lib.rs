//! kaflow's core: a capture file in, finished TCP connections out.
//!
//! Pure Rust, no Python: `cargo test` and `cargo fuzz` run on it alone; `kaflow-py` is the thin
//! binding that hands its results to the `pcapkit` package as columns.

pub mod flow;
pub mod segment;
