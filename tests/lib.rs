//! End-to-end suites for Jumpgate: `cli/` runs the real `jumpgate` against the real
//! `jumpgate-sim`, `tray/` the real `jumpgate-tray` in a throwaway desktop. This library
//! finds the binaries they run, and turns a simulator's configuration into a tenant entry.

use std::path::PathBuf;

/// A binary of the workspace, built beside the running test binary (`target/debug/`).
/// `cargo test --workspace` builds them all before any test runs.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/<test>-<hash> → target/debug/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (or bash scripts/test.sh)",
        path.display()
    );
    path
}

/// A simulator's tenant as a `[[tenants]]` entry named `name`, from the client configuration
/// it wrote (`config`): its `[azure]` keys under the name, for another simulator's
/// configuration to hold.
pub fn tenant_entry(config: &str, name: &str) -> String {
    let azure: Vec<&str> = config
        .lines()
        .skip_while(|l| l.trim() != "[azure]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .collect();
    format!("[[tenants]]\nname = \"{name}\"\n{}\n", azure.join("\n"))
}
