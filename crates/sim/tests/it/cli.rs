//! The `jumpgate-sim` binary: the ready line, the written config, signals and bad input.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_jumpgate-sim");

#[test]
fn serve_prints_the_ready_line_writes_a_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    let mut child = Command::new(BIN)
        .args(["serve", "--tenant", "demo", "--control", "--write-config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let url = line
        .trim_end()
        .strip_prefix("jumpgate-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // The config is complete by the time the line is printed.
    let text = std::fs::read_to_string(&config).expect("config written");
    let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
    assert_eq!(
        parsed["azure"]["tenant_id"].as_str(),
        Some("7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01")
    );
    assert_eq!(
        parsed["azure"]["client_id"].as_str(),
        Some("4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51")
    );
    assert_eq!(
        parsed["azure"]["authority_host"].as_str(),
        Some(url.as_str())
    );
    assert_eq!(parsed["azure"]["arm_endpoint"].as_str(), Some(url.as_str()));
    let echo: Vec<&str> = parsed["network"]["ip_echo_urls"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(echo, [format!("{url}/ip"), format!("{url}/cdn-cgi/trace")]);
    // RELIABILITY #30: the control token is in the config, and the config is the user's only.
    let token = parsed["simulator"]["control_token"]
        .as_str()
        .expect("control_token");
    assert!(token.len() >= 32, "{token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&config)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "exits cleanly on SIGTERM: {exit:?}");
}

#[test]
fn bad_tenants_fail_with_a_message_that_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[tenant]\nid = 5\n").expect("write");
    let cases: [(&str, &str); 3] = [
        (
            "nosuch",
            "use 'demo', 'empty', 'enterprise', 'fabrikam', or a path",
        ),
        (
            broken.to_str().expect("path"),
            "not valid TOML for a tenant",
        ),
        ("/nonexistent/t.toml", "cannot read tenant fixture"),
    ];
    for (tenant, expected) in cases {
        let out = Command::new(BIN)
            .args(["serve", "--tenant", tenant])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{tenant}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{tenant}: {stderr}");
    }
    let usage = Command::new(BIN)
        .args(["serve", "--listen", "nowhere"])
        .output()
        .expect("run");
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn the_empty_tenant_has_people_and_machines_but_nothing_set_up() {
    let fixture = jumpgate_sim::tenant::Fixture::load("empty").expect("empty tenant");
    let demo = jumpgate_sim::tenant::Fixture::load("demo").expect("demo tenant");
    assert_eq!(fixture.users.len(), demo.users.len());
    assert_eq!(fixture.vms.len(), demo.vms.len());
    assert!(
        fixture.jit_policies.is_empty()
            && fixture.eligibilities.is_empty()
            && fixture.role_definitions.is_empty()
            && fixture.role_policies.is_empty()
    );
}
