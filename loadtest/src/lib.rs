//! parley-loadtest: many WebSocket clients on a few threads, to find out
//! what a chat deployment can take and whether it loses anything meanwhile.
//!
//! Outside in:
//! - [`scenario`]: idle, fanout, churn and chaos, each a behaviour and a
//!   runner ([`cluster`] drives the local cluster for chaos);
//! - [`run`] steps a scenario's phases over [`worker`] threads;
//! - [`target`] says where connections go and [`credentials`] who they
//!   are (guests, minted tokens, or [`signup`] through the account API);
//! - [`worker`] is a mio event loop of [`conn`] connections;
//! - [`proto`] speaks Parley's protocol or a templated one; [`check`]
//!   decides exactly-once and order;
//! - [`histogram`], [`procfs`], [`report`] and [`plot`] measure and tell.

pub mod check;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod conn;
pub mod credentials;
pub mod histogram;
pub mod plot;
pub mod procfs;
pub mod proto;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shared;
pub mod signup;
pub mod target;
pub mod worker;

use cli::{Common, Scenario};
use report::Report;

/// Runs one scenario to its end.
pub fn run_scenario(common: &Common, scenario: &Scenario) -> Result<Report, String> {
    clock::now_ns(); // fix the epoch before any thread reads it
    match scenario {
        Scenario::Idle(args) => scenario::idle::run(common, args),
        Scenario::Fanout(args) => scenario::fanout::run(common, args),
        Scenario::Churn(args) => scenario::churn::run(common, args),
        Scenario::Chaos(args) => scenario::chaos::run(common, args),
    }
}
