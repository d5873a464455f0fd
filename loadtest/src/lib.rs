//! End-to-end harness: the real control plane, data-plane nodes and demo upstreams, each its
//! own process on loopback ports, with the demo directory pushed over SCIM.
//!
//! The binaries are found next to the running executable (`target/<profile>/`), which is where
//! `cargo test --workspace` and `cargo build --workspace --bins` put them; set
//! `PORTCULLIS_BIN_DIR` to use others. Every process is killed when its handle drops, and every
//! wait is bounded.

pub mod cluster;
pub mod enforcement;
pub mod http;
pub mod load;
pub mod proc;
pub mod scim_bulk;

pub use cluster::{Cluster, ClusterOptions};
