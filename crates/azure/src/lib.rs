//! Jumpgate's IO edge: everything that talks to Entra ID, Azure Resource Manager, the OS
//! keychain and the IP-echo services. The decisions live in `jumpgate-core`; this crate
//! carries them out.
//!
//! - [`http`]: the ARM client: bearer tokens, `Retry-After`, jittered backoff within a time
//!   budget, lenient error parsing, and the offset to the server's clock from `Date` headers;
//! - [`signin`]: Entra sign-in (auth code + PKCE on a loopback redirect, device code, Azure
//!   CLI) and refresh with rotation;
//! - [`firstrun`]: the tenant behind a work email's domain, and the configuration written;
//! - [`tokens`]: the token store on the OS keychain, chunked;
//! - [`session`]: a valid access token on demand;
//! - [`arm`]: PIM, approvals, JIT and resource reads;
//! - [`approver`]: whether the user decides requests (policies naming them, decisions made);
//! - [`private`]: the state directory (0700, the user's own) and its 0600 files;
//! - [`ip`]: public IPv4 detection from two or more echo services that must agree.
//!
//! Architecture invariant: no `tauri` here either; every endpoint comes from configuration.

pub mod access;
pub mod admin;
pub mod approver;
pub mod apps;
pub mod arm;
pub mod directory;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod failpoint;
pub mod firstrun;
pub mod groups;
pub mod http;
pub mod ip;
pub mod journal;
pub mod launch;
pub mod pending;
pub mod private;
pub mod session;
pub mod signin;
#[cfg(test)]
pub(crate) mod testserver;
pub mod tokens;
pub mod watch;

pub use error::Error;

/// Installs the TLS crypto provider once per process (ring; no second crypto library).
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
