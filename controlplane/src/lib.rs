//! The Portcullis control plane.
//!
//! Identity arrives from each customer IdP over SCIM ([`scim`]) and is stored with its event
//! log ([`store`]); Cedar policies are validated and versioned ([`policies`]); issuer keys are
//! fetched ([`oidc`]); the [`compiler`] turns all of it into an immutable snapshot that the
//! [`publisher`] stores and streams to every data-plane node over gRPC ([`grpc`]), which report
//! back what they applied ([`nodes`]). [`bindings`] turn IdP groups into role bundles, with
//! dynamic groups ([`rules`]), conditions, planned end dates and [`breakglass`] access, and
//! link one person's accounts across sources ([`merge`]). Nodes ship their decision records
//! back over the same stream; the [`audit`] API queries and replays them against past
//! snapshots ([`history`]). Programs authenticate with [`apikeys`], as users or as
//! [`service_accounts`]. Operators use the [`admin`] API and the [`cli`].

pub mod admin;
pub mod apikeys;
pub mod attributes;
pub mod audit;
pub mod bindings;
pub mod breakglass;
pub mod cli;
pub mod compiler;
pub mod config;
pub mod evidence;
pub mod explain;
pub mod grpc;
pub mod history;
pub mod lifecycle;
pub mod merge;
pub mod nodes;
pub mod oidc;
pub mod policies;
pub mod publisher;
pub mod receipts;
pub mod rules;
pub mod scim;
pub mod server;
pub mod service_accounts;
pub mod siem;
pub mod signing;
pub mod store;
pub mod tls;
