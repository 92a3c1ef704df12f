//! Integration tests for `jumpgate-sim`: each starts a real simulator on loopback and talks
//! to it over HTTP and TCP, as a client of Azure would.

mod admin;
mod apps;
mod arm;
mod claims;
mod cli;
mod conformance;
mod directory;
mod enterprise;
mod entra;
mod groups;
mod jit;
mod mgmt;
mod pim;
mod requests;
mod story;
mod support;
mod timing;
