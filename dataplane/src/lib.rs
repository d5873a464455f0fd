//! The Portcullis data plane: a Pingora edge that authenticates, classifies, decides and
//! enforces every AI and MCP request against the snapshot the control plane streamed to it.
//!
//! - [`subscriber`] holds the gRPC stream and swaps verified snapshots into [`state`];
//!   [`lkg`] keeps the last one on disk.
//! - [`proxy`] handles each request: [`auth`], [`classify`], decide, then [`respond`] with a
//!   refusal or [`forward`] upstream; [`decision_log`] records every decision.
//! - [`admin`] serves health, status and metrics.

pub mod admin;
pub mod auth;
pub mod classify;
pub mod cli;
pub mod config;
pub mod decision_log;
pub mod forward;
pub mod fuzz_checks;
pub mod headers;
pub mod listfilter;
pub mod lkg;
pub mod logwriter;
pub mod passthrough;
pub mod proxy;
pub mod records;
pub mod respond;
pub mod standing;
pub mod state;
pub mod subscriber;
pub mod tools;
