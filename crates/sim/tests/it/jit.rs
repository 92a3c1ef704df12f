//! JIT semantics: policy checks on initiate, requests[], revocation, expiry and the gate.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// The demo tenant with alice's JIT Requester role already active.
async fn activated() -> Sim {
    let sim = demo().await;
    sim.activate_approved(ALICE, "PT8H", "setup").await;
    sim
}

fn ports(policy: &Value) -> Vec<Value> {
    policy["properties"]["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .flat_map(|r| r["virtualMachines"].as_array().cloned().unwrap_or_default())
        .flat_map(|v| v["ports"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn reliability_11_initiate_checks_port_prefix_and_duration_against_the_policy() {
    let sim = activated().await;
    let wrong_port = sim
        .initiate(ALICE, "jumpbox-win-01", 22, 30, Some("127.0.0.1"))
        .await;
    assert_eq!(wrong_port.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong_port.message().contains("not a subset of policy"),
        "{}",
        wrong_port.message()
    );
    assert!(
        wrong_port.message().contains("port 22"),
        "says what is wrong: {}",
        wrong_port.message()
    );
    let too_long = sim
        .initiate(ALICE, "jumpbox-linux-01", 22, 61 + 1, Some("127.0.0.1"))
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert!(
        too_long.message().contains("PT1H"),
        "{}",
        too_long.message()
    );
    let in_the_past = sim
        .initiate(ALICE, "jumpbox-linux-01", 22, -5, Some("127.0.0.1"))
        .await;
    assert_eq!(in_the_past.status, StatusCode::BAD_REQUEST);
    let bad_prefix = sim
        .initiate(ALICE, "jumpbox-win-01", 3389, 30, Some("127.0.0.1/40"))
        .await;
    assert_eq!(bad_prefix.status, StatusCode::BAD_REQUEST);
    let unknown_vm = sim
        .initiate(ALICE, "jumpbox-mac-01", 3389, 30, Some("127.0.0.1"))
        .await;
    assert!(
        unknown_vm.message().contains("not in the policy"),
        "{}",
        unknown_vm.message()
    );
}

#[tokio::test]
async fn reliability_11_a_cidr_policy_admits_only_that_exact_prefix() {
    let sim = activated().await;
    let policy = sim
        .get(DAVE, &format!("{}?api-version={JIT}", sim.policy_path()))
        .await
        .body;
    let mut vms = policy["properties"]["virtualMachines"].clone();
    vms[0]["ports"][0]["allowedSourceAddressPrefix"] = json!("127.0.0.0/24");
    let put = sim
        .arm(
            Some(DAVE),
            Method::PUT,
            &format!("{}?api-version={JIT}", sim.policy_path()),
            Some(json!({"kind": "Basic", "properties": {"virtualMachines": vms}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let single = sim
        .initiate(ALICE, "jumpbox-win-01", 3389, 30, Some("127.0.0.1"))
        .await;
    assert_eq!(single.status, StatusCode::BAD_REQUEST);
    assert!(
        single.message().contains("127.0.0.0/24"),
        "names the allowed prefix: {}",
        single.message()
    );
    let exact = sim
        .initiate(ALICE, "jumpbox-win-01", 3389, 30, Some("127.0.0.0/24"))
        .await;
    assert_eq!(exact.status, StatusCode::ACCEPTED, "{}", exact.body);
    let gate = sim.gate_address("jumpbox-win-01", 3389).await;
    assert!(
        gate_admits(gate, "127.0.0.2".parse().expect("ip"), true).await,
        "the whole block is let through"
    );
}

#[tokio::test]
async fn initiate_answers_202_records_the_request_and_a_newer_one_revokes_the_older() {
    let sim = activated().await;
    let first = sim
        .initiate(ALICE, "jumpbox-linux-01", 22, 30, Some("127.0.0.1"))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(first.body["justification"], "ticket INC-1");
    assert_eq!(
        first.body["virtualMachines"][0]["ports"][0]["status"],
        "Initiated"
    );
    // The source address defaults to the one ARM sees the call from.
    let second = sim.initiate(ALICE, "jumpbox-linux-01", 22, 30, None).await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(
        second.body["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"],
        "127.0.0.1"
    );
    let policy = sim
        .get(ALICE, &format!("{}?api-version={JIT}", sim.policy_path()))
        .await
        .body;
    let all = ports(&policy);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["status"], "Revoked");
    assert_eq!(all[0]["statusReason"], "NewerRequestInitiated");
    assert_eq!(all[1]["status"], "Initiated");
}

#[tokio::test]
async fn the_gate_admits_only_the_granted_source_and_only_until_end_time() {
    let sim = activated().await;
    let gate = sim.gate_address("jumpbox-linux-01", 22).await;
    let alice_ip = "127.0.0.1".parse().expect("ip");
    assert!(
        !gate_admits(gate, alice_ip, false).await,
        "closed before any request"
    );
    assert_eq!(
        sim.initiate(ALICE, "jumpbox-linux-01", 22, 20, Some("127.0.0.1"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let gate = sim.gate_address("jumpbox-linux-01", 22).await;
    assert!(
        gate_admits(gate, alice_ip, false).await,
        "SSH banner for alice"
    );
    assert!(!gate_admits(gate, "127.0.0.2".parse().expect("ip"), false).await);
    sim.advance(19 * 60).await;
    assert!(
        gate_admits(gate, alice_ip, false).await,
        "still open before endTimeUtc"
    );
    sim.advance(2 * 60).await;
    assert!(
        !gate_admits(gate, alice_ip, false).await,
        "closed after endTimeUtc"
    );
    let policy = sim
        .get(ALICE, &format!("{}?api-version={JIT}", sim.policy_path()))
        .await
        .body;
    assert_eq!(ports(&policy)[0]["statusReason"], "Expired");
}

#[tokio::test]
async fn a_vm_behind_the_firewall_gets_a_mapped_port() {
    let fixture = jumpgate_sim::tenant::Fixture::parse(
        "firewall",
        &jumpgate_sim::tenant::DEMO.replace(
            "public_ip = \"127.0.0.11\"",
            "public_ip = \"127.0.0.11\"\nbehind_firewall = true",
        ),
    )
    .expect("fixture");
    let sim = start(
        jumpgate_sim::SimBuilder::from_fixture(fixture)
            .control(true)
            .propagation_delay(0),
    )
    .await;
    sim.activate_approved(ALICE, "PT1H", "fw").await;
    let policy = sim
        .get(ALICE, &format!("{}?api-version={JIT}", sim.policy_path()))
        .await
        .body;
    let linux = policy["properties"]["virtualMachines"]
        .as_array()
        .expect("vms")
        .iter()
        .find(|v| {
            v["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("jumpbox-linux-01"))
        })
        .cloned()
        .expect("linux vm");
    let firewall = linux["publicIpAddress"]
        .as_str()
        .expect("firewall address")
        .to_string();
    let opened = sim
        .initiate(ALICE, "jumpbox-linux-01", 22, 30, Some("127.0.0.1"))
        .await;
    let mapped = opened.body["virtualMachines"][0]["ports"][0]["mappedPort"]
        .as_u64()
        .expect("mappedPort");
    let addr: std::net::SocketAddr = format!("{firewall}:{mapped}").parse().expect("address");
    assert!(gate_admits(addr, "127.0.0.1".parse().expect("ip"), false).await);
    assert!(!gate_admits(addr, "127.0.0.2".parse().expect("ip"), false).await);
}

#[tokio::test]
async fn policies_are_validated_on_write_and_can_be_deleted() {
    let sim = demo().await;
    let path = format!("{}?api-version={JIT}", sim.policy_path());
    let vm = format!("{RG}/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01");
    for (port, prefix, max) in [
        (3389, "*", "P2D"),
        (3389, "*", "PT1M"),
        (3389, "not-an-ip", "PT1H"),
        (70000, "*", "PT1H"),
    ] {
        let body = json!({"kind": "Basic", "properties": {"virtualMachines": [{"id": vm, "ports": [{"number": port, "protocol": "TCP", "allowedSourceAddressPrefix": prefix, "maxRequestAccessDuration": max}]}]}});
        let r = sim.arm(Some(DAVE), Method::PUT, &path, Some(body)).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{port} {prefix} {max}: {}",
            r.body
        );
    }
    assert_eq!(
        sim.arm(Some(ALICE), Method::DELETE, &path, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        sim.arm(Some(DAVE), Method::DELETE, &path, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        sim.arm(Some(DAVE), Method::DELETE, &path, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.get(DAVE, &path).await.status, StatusCode::NOT_FOUND);
    let gate = sim
        .http
        .get(sim.url("/_sim/gate"))
        .bearer_auth(sim.control_token())
        .send()
        .await
        .expect("gate")
        .json::<Value>()
        .await
        .expect("JSON");
    assert_eq!(
        gate.as_array().expect("list").len(),
        0,
        "no policy, no gate ports"
    );
}

#[tokio::test]
async fn an_admitted_connection_is_forwarded_to_a_named_backend() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("backend");
    let backend_addr = backend.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = backend.accept().await {
            let _ = s.write_all(b"SSH-2.0-RealBackend\r\n").await;
        }
    });
    let fixture = jumpgate_sim::tenant::Fixture::parse(
        "backend",
        &jumpgate_sim::tenant::DEMO.replace(
            "public_ip = \"127.0.0.11\"",
            &format!("public_ip = \"127.0.0.11\"\nbackend = \"{backend_addr}\""),
        ),
    )
    .expect("fixture");
    let sim = start(
        jumpgate_sim::SimBuilder::from_fixture(fixture)
            .control(true)
            .propagation_delay(0),
    )
    .await;
    sim.activate_approved(ALICE, "PT1H", "real backend").await;
    assert_eq!(
        sim.initiate(ALICE, "jumpbox-linux-01", 22, 30, Some("127.0.0.1"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let gate = sim.gate_address("jumpbox-linux-01", 22).await;
    let mut stream = tokio::net::TcpStream::connect(gate).await.expect("connect");
    let mut banner = vec![0u8; 21];
    stream.read_exact(&mut banner).await.expect("banner");
    assert_eq!(&banner, b"SSH-2.0-RealBackend\r\n");
}

#[tokio::test]
async fn two_people_share_a_jump_box_each_with_their_own_rule() {
    // alice (activated) and dave (Owner) open SSH on the same VM from different addresses.
    let sim = activated().await;
    let alice_ip = "127.0.0.1".parse().expect("ip");
    let dave_ip = "127.0.0.2".parse().expect("ip");
    let opened = sim
        .initiate(DAVE, "jumpbox-linux-01", 22, 30, Some("127.0.0.2"))
        .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let opened = sim
        .initiate(ALICE, "jumpbox-linux-01", 22, 30, Some("127.0.0.1"))
        .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let read = || async {
        let policy = sim
            .get(DAVE, &format!("{}?api-version={JIT}", sim.policy_path()))
            .await
            .body;
        policy["properties"]["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(|r| {
                (
                    r["requestor"].as_str().unwrap_or("").to_string(),
                    r["virtualMachines"][0]["ports"][0]["status"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    // alice's newer request leaves dave's rule in force: JIT keeps one rule per request.
    assert_eq!(
        read().await,
        [
            (DAVE.to_string(), "Initiated".to_string()),
            (ALICE.to_string(), "Initiated".to_string())
        ]
    );
    let gate = sim.gate_address("jumpbox-linux-01", 22).await;
    assert!(gate_admits(gate, alice_ip, false).await, "alice's source");
    assert!(gate_admits(gate, dave_ip, false).await, "dave's source");
    assert!(!gate_admits(gate, "127.0.0.3".parse().expect("ip"), false).await);
    // alice asks again: only her own older rule is revoked.
    let again = sim
        .initiate(ALICE, "jumpbox-linux-01", 22, 30, Some("127.0.0.1"))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(
        read().await,
        [
            (DAVE.to_string(), "Initiated".to_string()),
            (ALICE.to_string(), "Revoked".to_string()),
            (ALICE.to_string(), "Initiated".to_string())
        ]
    );
    let revoked = sim.events_of("jit.revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert!(
        gate_admits(gate, dave_ip, false).await,
        "dave still holds his rule"
    );
    // dave's own rule ends at its own end; alice's, opened later, outlasts it.
    sim.advance(30 * 60 - 30).await;
    sim.initiate(ALICE, "jumpbox-linux-01", 22, 20, Some("127.0.0.1"))
        .await;
    sim.advance(60).await;
    assert!(
        !gate_admits(gate, dave_ip, false).await,
        "dave's rule expired"
    );
    assert!(
        gate_admits(gate, alice_ip, false).await,
        "alice's newest rule holds"
    );
}
