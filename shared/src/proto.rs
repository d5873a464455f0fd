//! The gRPC snapshot API, generated at build time from `proto/portcullis/v1/snapshot.proto`
//! with a vendored `protoc`.
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]

tonic::include_proto!("portcullis.v1");
