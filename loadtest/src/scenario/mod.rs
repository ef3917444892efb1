//! The scenarios, one file each: a per-thread [`crate::worker::Behaviour`]
//! and a `run` that steps the phases and builds the report.

pub mod chaos;
pub mod churn;
pub mod fanout;
pub mod idle;
pub mod publisher;
pub mod slow;
