//! Parley: a horizontally scalable live chat server.
//!
//! Layout, outside in:
//! - [`server`] starts the reactors, the broker and their threads;
//! - [`reactor`] owns sockets: one mio event loop per core;
//! - [`http`] and [`ws`] are sans-IO parsers and encoders on byte slices;
//! - [`chat`] is the protocol: requests in, frames out;
//! - [`broker`] orders, stores and fans out room messages;
//! - [`config`], [`stats`] and [`web`] support the rest;
//! - [`metrics`], [`drain`] and [`canary`] are for operators: the
//!   `/metrics` exposition, the SIGTERM drain timeline, and the probe that
//!   proves a node still receives what the cluster publishes;
//!   [`print_config`] shows the effective configuration.

pub mod auth;
pub mod broker;
pub mod canary;
pub mod chat;
pub mod config;
pub mod drain;
pub mod http;
pub mod metrics;
pub mod print_config;
pub mod reactor;
pub mod server;
pub mod stats;
mod trim;
pub mod web;
pub mod ws;
