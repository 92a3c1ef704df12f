//! `jumpgate-sim`: a local simulator of the Entra ID and Azure Resource Manager endpoints that
//! Jumpgate uses, faithful to Microsoft's published OpenAPI specs and examples.
//!
//! It serves, on one loopback port:
//!
//! - Entra v2.0 sign-in: OpenID metadata, JWKS, the authorize page (auth code + PKCE S256),
//!   the token endpoint (code, refresh with rotation, device code) and device-code sign-in;
//! - ARM: PIM schedule requests and instances, role management policies, PIM approvals,
//!   Defender for Cloud JIT policies, subscriptions, VMs, NICs, public IPs, role definitions,
//!   role assignments and the caller's permissions, every call checked against the active
//!   roles of the caller and of the groups its token names, at any scope from a management
//!   group down;
//! - Microsoft Graph: users, app registrations, groups, and PIM for Groups (eligibilities,
//!   activations and their requests, approvals, policies);
//! - IP echo services in the formats of ipify and Cloudflare's trace;
//! - with `--control`, a test-control API under `/_sim/`.
//!
//! Beside the HTTP server, the JIT gate listens on each VM's loopback "public IP" and lets a
//! TCP connection through only while a JIT rule admits its source address.
//!
//! Start one in-process with [`SimBuilder`]; it stops when its [`SimHandle`] is dropped.

mod arm;
pub mod clock;
mod control;
pub mod duration;
mod entra;
pub mod error;
pub mod gate;
mod graph;
pub mod jwt;
pub mod rbac;
pub mod schema;
mod server;
pub mod state;
pub mod tenant;

pub use server::{ClientConfig, SimBuilder, SimHandle};
