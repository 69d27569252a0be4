//! runbookd: a production runbook as scheduled, audited, tested jobs.
//!
//! `main.rs` only wires the CLI to this library; integration tests drive the
//! same library and the built binary. The layers, top to bottom, are in
//! STYLE.md.

pub mod adapters;
pub mod alerting;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod daemon;
pub mod delivery;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod logging;
pub mod model;
pub mod notify;
pub mod pings;
pub mod process;
pub mod report;
pub mod retry;
pub mod runlog;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod scrub;
pub mod secret;
pub mod store;
pub mod table;
pub mod yaml;

/// Fixtures for tests and benches; not in the shipped binary.
#[cfg(feature = "testkit")]
pub mod testkit;
