//! End-to-end tests: the real `jumpgate` binary against the real `jumpgate-sim` binary, with
//! tokens in a real Secret Service keychain (run through `scripts/test.sh`, which starts
//! gnome-keyring in a private D-Bus session).

mod admin;
mod appreg;
mod doctor;
mod enterprise;
mod faults;
mod findings;
mod firstrun;
mod flows;
mod groups;
mod reliability;
// Real sshd and xrdp behind the gate: Linux packages.
#[cfg(target_os = "linux")]
mod servers;
mod support;
mod watch;
