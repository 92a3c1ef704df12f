//! End-to-end tests: the real `jumpgate` binary against the real `jumpgate-sim` binary, with
//! tokens in a real Secret Service keychain (run through `scripts/test.sh`, which starts
//! gnome-keyring in a private D-Bus session).

mod admin;
mod appreg;
mod doctor;
mod enterprise;
mod entra;
// The fault matrix skews the CLI's clock with faketime and reads the Secret Service.
#[cfg(target_os = "linux")]
mod faults;
mod findings;
// The first run finds the user's folder through HOME and XDG_CONFIG_HOME, which Windows does
// not read, and its organisation's settings come from a system file the test writes.
#[cfg(unix)]
mod firstrun;
mod flows;
mod groups;
// `run`'s stories start shell commands and the SSH stand-in: not yet part of the Wine run.
#[cfg(unix)]
mod profiles;
mod reliability;
// Real sshd and xrdp behind the gate: Linux packages.
#[cfg(target_os = "linux")]
mod servers;
mod support;
mod tenants;
mod watch;
