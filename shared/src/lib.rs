//! The contract between Portcullis's control plane and its data-plane nodes.
//!
//! Everything here is pure: no I/O, no async, no clock reads. The control plane builds a
//! [`snapshot::Snapshot`] and frames it with [`codec`]; a node decodes it, builds an
//! [`engine::Engine`] once, and decides every request against it with [`engine::Engine::decide`].

pub mod audit;
pub mod codec;
pub mod delta;
pub mod engine;
pub mod fast;
pub mod hash;
pub mod policy;
pub mod proto;
pub mod request;
pub mod schema;
pub mod sharded;
pub mod signing;
pub mod snapshot;

pub use hash::Hash32;
