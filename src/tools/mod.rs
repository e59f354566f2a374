//! The demo, synthetic ledgers for tests and benchmarks, and the benchmark itself.

pub mod bench;
pub mod bench_server;
pub mod demo;
pub mod synth;
