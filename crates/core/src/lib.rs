//! Jumpgate's domain and engine: the pieces that decide, with no IO and no clock reads.
//!
//! - [`config`]: the one TOML configuration and where it is looked up; [`firstrun`]: the
//!   configuration a first run writes from a work email;
//! - [`duration`] and [`ip`]: strict parsers for what users and services hand us;
//! - [`policy`]: PIM and JIT pre-flight checks, so a request that would be refused is never
//!   sent;
//! - [`explain`]: every Azure and Entra error code Jumpgate knows, as a message that says
//!   what to do;
//! - [`text`]: text from servers and other people made harmless for a terminal, a
//!   notification or a log; [`input`]: the one set of rules for text a person sends on;
//! - [`phase`]: the request state machine and the adaptive polling plan, both pure: `now`
//!   and observations go in, decisions come out.
//!
//! Architecture invariant: this crate never depends on `tauri`, never does network IO, and
//! never reads the clock; callers pass `now`.

pub mod admin;
pub mod appreg;
pub mod audit;
pub mod config;
pub mod deeplink;
pub mod duration;
pub mod events;
pub mod explain;
pub mod firstrun;
pub mod input;
pub mod ip;
pub mod launch;
pub mod phase;
pub mod planner;
pub mod policy;
pub mod text;
pub mod tray;
pub mod watch;
