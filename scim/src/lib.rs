//! SCIM 2.0 (RFC 7643/7644) protocol pieces, free of I/O so they can be tested and fuzzed on
//! their own: the resource [`schema`]s, the [`filter`] grammar and its evaluation, [`patch`]
//! parsing and application, and [`error`] bodies.
//!
//! Every parser here takes untrusted input from an IdP and must answer with a [`ScimError`]
//! for anything it cannot accept: never panic, never loop, never recurse without bound
//! (`fuzz/` drives them with cargo-fuzz).

pub mod error;
pub mod filter;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod patch;
pub mod schema;

pub use error::{ScimError, ScimType};

/// The SCIM media type.
pub const CONTENT_TYPE: &str = "application/scim+json";
