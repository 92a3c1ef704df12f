//! The `enterprise` tenant: five subscriptions, paged lists, VMs that share a name, no
//! standing access for alice, CIDR-only JIT sources behind a NAT, asynchronous JIT, MFA and
//! authentication-context step-up, exact redirect URIs, RS256 tokens, no Graph consent, a
//! guest, and approval stages whose name is not their id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jumpgate_sim::SimBuilder;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const SUBS: [&str; 5] = [
    "0b7e4d2c-1a3f-4e5b-8c6d-9f0a1b2c3d41",
    "5e8a1f3b-7c2d-4b9e-a6f0-3d4c5b6a7e82",
    "9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93",
    "2f6a8c0e-4b3d-4c5e-9a7b-8c9d0e1f2a34",
    "7a4b2c9d-6e5f-4d1a-8b3c-5f6e7d8c9b05",
];
const JUMP_SUB: &str = "9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93";
const LEGACY_SUB: &str = "2f6a8c0e-4b3d-4c5e-9a7b-8c9d0e1f2a34";
const FINANCE_SUB: &str = "5e8a1f3b-7c2d-4b9e-a6f0-3d4c5b6a7e82";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const ERIN: &str = "erin_fabrikam.example#EXT#@contoso.example";
const ALICE_PUBLIC_IP: &str = "84.17.40.23";
const APPROVALS: &str = "2021-01-01-preview";

fn rg(name: &str) -> String {
    format!("/subscriptions/{JUMP_SUB}/resourceGroups/{name}")
}

fn win01() -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01",
        rg("rg-jumpboxes")
    )
}

fn jit_policy(rg_id: &str, location: &str) -> String {
    format!("{rg_id}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/default")
}

/// The enterprise tenant with the control API and its own delays.
async fn enterprise() -> Sim {
    start(SimBuilder::new("enterprise").control(true)).await
}

/// Follows `nextLink`s from `path` as `token`; returns every page's body.
async fn pages(sim: &Sim, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = path.to_string();
    for _ in 0..50 {
        let reply = sim.arm_as(Some(token), Method::GET, &next, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{next}: {}", reply.body);
        let link = reply.body["nextLink"].as_str().map(str::to_string);
        out.push(reply.body);
        match link {
            Some(link) => {
                assert!(
                    link.starts_with(sim.handle.url()),
                    "nextLink is absolute on the simulator: {link}"
                );
                next = link[sim.handle.url().len()..].to_string();
            }
            None => return out,
        }
    }
    panic!("more than 50 pages at {path}");
}

fn items(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["value"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// A token for `upn` from the control API, optionally stepped up.
async fn token_with(sim: &Sim, upn: &str, extra: Value) -> String {
    let mut body = json!({"upn": upn});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    sim.control("/token", body).await["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// A SelfActivate request body for `role` at `scope`.
fn activation(sim: &Sim, upn: &str, scope: &str, role: &str, duration: &str) -> Value {
    let principal = if upn == ERIN {
        "e1170000-0000-4000-8000-000000000005"
    } else {
        sim.oid(upn)
    };
    let sub = scope.split('/').nth(2).expect("subscription in scope");
    json!({"properties": {
        "principalId": principal,
        "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
        "requestType": "SelfActivate",
        "justification": "INC-7 patching",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": duration}}}})
}

async fn activate_as(sim: &Sim, token: &str, upn: &str, scope: &str, role: &str) -> Reply {
    sim.arm_as(
        Some(token),
        Method::PUT,
        &format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}",
            uuid::Uuid::new_v4()
        ),
        Some(activation(sim, upn, scope, role, "PT1H")),
    )
    .await
}

/// alice activates JIT Requester at rg-jumpboxes, bob approves, and the propagation delay
/// (10 s) and the minute in which ARM's cache refuses a first initiate both pass.
async fn alice_active_at_jumpboxes(sim: &Sim) {
    let alice = sim.token(ALICE).await;
    let request = activate_as(sim, &alice, ALICE, &rg("rg-jumpboxes"), JIT_REQUESTER).await;
    assert_eq!(request.status, StatusCode::CREATED, "{}", request.body);
    assert_eq!(request.body["properties"]["status"], "PendingApproval");
    let approval = request.body["properties"]["approvalId"]
        .as_str()
        .expect("approval")
        .to_string();
    let decided = sim.decide(BOB, &approval, "Approve", "ok").await;
    assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
    sim.advance(10 + 60).await;
}

struct SignIn<'a> {
    sim: &'a Sim,
    redirect: &'a str,
    scope: &'a str,
    claims: Option<&'a str>,
}

impl SignIn<'_> {
    fn new(sim: &Sim) -> SignIn<'_> {
        SignIn {
            sim,
            redirect: "http://localhost:53117/",
            scope: "https://management.azure.com/.default openid profile offline_access",
            claims: None,
        }
    }

    /// The authorize request (`prompt=none` with a `login_hint`, as the control API allows).
    async fn authorize(&self, upn: &str, challenge: &str) -> reqwest::Response {
        let c = self.sim.handle.client_config();
        let mut query = vec![
            ("client_id", c.client_id.clone()),
            ("response_type", "code".into()),
            ("redirect_uri", self.redirect.into()),
            ("scope", self.scope.into()),
            ("state", "st".into()),
            ("code_challenge", challenge.into()),
            ("code_challenge_method", "S256".into()),
            ("login_hint", upn.into()),
            ("prompt", "none".into()),
        ];
        if let Some(claims) = self.claims {
            query.push(("claims", claims.into()));
        }
        self.sim
            .http
            .get(
                self.sim
                    .url(&format!("/{}/oauth2/v2.0/authorize", c.tenant_id)),
            )
            .query(&query)
            .send()
            .await
            .expect("authorize")
    }

    /// Signs `upn` in and redeems the code; returns the token response.
    async fn run(&self, upn: &str) -> Value {
        let (verifier, challenge) = pkce();
        let r = self.authorize(upn, &challenge).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "authorize redirects");
        let location = url::Url::parse(r.headers()["location"].to_str().expect("location"))
            .expect("redirect URL");
        let code = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"));
        let (status, body) = token_form(
            self.sim,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", self.redirect),
                ("code_verifier", &verifier),
                ("scope", self.scope),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

async fn token_form(sim: &Sim, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let c = sim.handle.client_config();
    let mut fields: Vec<(&str, &str)> = vec![("client_id", &c.client_id)];
    fields.extend_from_slice(form);
    let response = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/token", c.tenant_id)))
        .form(&fields)
        .send()
        .await
        .expect("token");
    (response.status(), response.json().await.expect("JSON"))
}

/// The gate's address for the VM with this full id.
async fn gate_for(sim: &Sim, vm_id: &str, port: u16) -> std::net::SocketAddr {
    let endpoints: Value = sim
        .http
        .get(sim.url("/_sim/gate"))
        .bearer_auth(sim.control_token())
        .send()
        .await
        .expect("gate")
        .json()
        .await
        .expect("JSON");
    let entry = endpoints
        .as_array()
        .expect("array")
        .iter()
        .find(|e| {
            e["vm"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(vm_id))
                && e["port"] == port
        })
        .unwrap_or_else(|| panic!("no gate endpoint for {vm_id}:{port} in {endpoints}"));
    entry["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("socket address")
}

fn ports(policy: &Value) -> Vec<Value> {
    policy["properties"]["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["virtualMachines"].as_array().cloned().unwrap_or_default())
        .flat_map(|v| v["ports"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn five_subscriptions_are_listed_two_a_page() {
    // How fast it starts is measured by `scripts/bench/sim-startup.py --tenant enterprise`.
    let sim = enterprise().await;
    let dave = sim.token(DAVE).await;
    let all = pages(&sim, &dave, "/subscriptions?api-version=2022-12-01").await;
    let ids: Vec<&str> = all
        .iter()
        .flat_map(|p| p["value"].as_array().expect("value"))
        .map(|s| s["subscriptionId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, SUBS, "five subscriptions, in the fixture's order");
    assert_eq!(all.len(), 3, "pages of at most two");
    assert!(all
        .iter()
        .all(|p| p["value"].as_array().expect("value").len() <= 2));
    assert_eq!(all[1]["value"][0]["displayName"], "Contoso Jump Boxes");
    // The nextLink keeps the path and api-version and adds an opaque $skiptoken.
    let link = all[0]["nextLink"].as_str().expect("nextLink");
    let url = url::Url::parse(link).expect("absolute URL");
    assert_eq!(url.path(), "/subscriptions");
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(
        query.contains(&("api-version".into(), "2022-12-01".into())),
        "{link}"
    );
    assert!(
        query
            .iter()
            .any(|(k, v)| k == "$skiptoken" && !v.is_empty()),
        "{link}"
    );
    // demo still answers in one page.
    let demo = demo().await;
    let subs = demo
        .get(DAVE, "/subscriptions?api-version=2022-12-01")
        .await;
    assert!(subs.body.get("nextLink").is_none(), "{}", subs.body);
}

#[tokio::test]
async fn lists_come_in_pages_some_with_an_empty_first_page_and_bad_skiptokens_get_400() {
    let sim = enterprise().await;
    let alice = sim.token(ALICE).await;
    let path = format!(
        "/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"
    );
    let all = pages(&sim, &alice, &path).await;
    assert_eq!(all[0]["value"], json!([]), "an empty first page");
    assert!(all[0]["nextLink"].is_string(), "that still has a nextLink");
    let link = all[0]["nextLink"].as_str().expect("link");
    let query: Vec<(String, String)> = url::Url::parse(link)
        .expect("URL")
        .query_pairs()
        .into_owned()
        .collect();
    assert!(
        query.contains(&("$filter".into(), "asTarget()".into())),
        "{link}"
    );
    assert!(all
        .iter()
        .all(|p| p["value"].as_array().expect("value").len() <= 2));
    let eligible = items(&all);
    assert_eq!(eligible.len(), 5, "{eligible:?}");
    let roles: Vec<&str> = eligible
        .iter()
        .map(|e| {
            e["properties"]["expandedProperties"]["roleDefinition"]["displayName"]
                .as_str()
                .expect("role")
        })
        .collect();
    for role in ["JIT Requester", "Security Admin", "Contributor", "Owner"] {
        assert!(roles.contains(&role), "{role} in {roles:?}");
    }

    // JIT policy lists (dave, at the jump boxes' subscription) and approvals too.
    let dave = sim.token(DAVE).await;
    let jit = pages(
        &sim,
        &dave,
        &format!("/subscriptions/{JUMP_SUB}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"),
    )
    .await;
    assert_eq!(jit[0]["value"], json!([]));
    assert_eq!(items(&jit).len(), 2, "rg-jumpboxes and rg-jumpboxes-secure");
    let bob = sim.token(BOB).await;
    let inbox = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals?api-version={APPROVALS}&$filter=asApprover()");
    let first = sim.arm_as(Some(&bob), Method::GET, &inbox, None).await;
    assert_eq!(first.body["value"], json!([]), "{}", first.body);
    assert!(first.body["nextLink"].is_string(), "{}", first.body);

    // A garbled or foreign $skiptoken is refused in ARM's error shape.
    for token in ["garbage", "MTIzNA", &B64.encode("0.000000000000")] {
        let bad = sim
            .arm_as(
                Some(&alice),
                Method::GET,
                &format!("{path}&$skiptoken={token}"),
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{token}: {}", bad.body);
        assert_eq!(bad.code(), "InvalidSkipToken");
        assert!(!bad.message().is_empty());
    }
    // A token taken from one list to another is refused too.
    let foreign = link.split("$skiptoken=").nth(1).expect("token");
    let moved = sim
        .arm_as(
            Some(&dave),
            Method::GET,
            &format!("/subscriptions?api-version=2022-12-01&$skiptoken={foreign}"),
            None,
        )
        .await;
    assert_eq!(moved.status, StatusCode::BAD_REQUEST, "{}", moved.body);
}

#[tokio::test]
async fn before_activation_alice_reads_only_what_a_requester_may() {
    let sim = enterprise().await;
    let alice = sim.token(ALICE).await;
    // No subscription is hers to list.
    let subs = pages(&sim, &alice, "/subscriptions?api-version=2022-12-01").await;
    assert!(items(&subs).is_empty(), "{subs:?}");
    // JIT policies and VMs: 403 until a role is active.
    let policy = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &format!(
                "{}?api-version={JIT}",
                jit_policy(&rg("rg-jumpboxes"), "westeurope")
            ),
            None,
        )
        .await;
    assert_eq!(
        (policy.status, policy.code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed"),
        "{}",
        policy.body
    );
    let list = sim
        .arm_as(Some(&alice), Method::GET, &format!("/subscriptions/{JUMP_SUB}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"), None)
        .await;
    assert_eq!(list.status, StatusCode::FORBIDDEN, "{}", list.body);
    let vms = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Compute/virtualMachines?api-version=2024-03-01",
                rg("rg-jumpboxes")
            ),
            None,
        )
        .await;
    assert_eq!(
        (vms.status, vms.code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed"),
        "{}",
        vms.body
    );
    let vm = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &format!("{}?api-version=2024-03-01", win01()),
            None,
        )
        .await;
    assert_eq!(vm.status, StatusCode::FORBIDDEN);
    // Role definitions: any signed-in user.
    let role = sim
        .arm_as(Some(&alice), Method::GET, &format!("/subscriptions/{JUMP_SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}?api-version=2022-04-01"), None)
        .await;
    assert_eq!(role.status, StatusCode::OK, "{}", role.body);
    assert_eq!(role.body["properties"]["roleName"], "JIT Requester");
    // The activation policy of a role where she is eligible for it, and not elsewhere.
    let filter = |scope: &str, role: &str| {
        format!("{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}&$filter=roleDefinitionId%20eq%20'/subscriptions/{JUMP_SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}'")
    };
    let own = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &filter(&rg("rg-jumpboxes"), JIT_REQUESTER),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let policy_id = own.body["value"][0]["properties"]["policyId"]
        .as_str()
        .expect("policy id")
        .to_string();
    let rules = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &format!("{policy_id}?api-version={PIM}"),
            None,
        )
        .await;
    assert_eq!(rules.status, StatusCode::OK, "{}", rules.body);
    let reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    let other = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &filter(&rg("rg-jumpboxes"), reader),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
    let corp_it = SUBS[0];
    let all_policies = sim
        .arm_as(Some(&alice), Method::GET, &format!("/subscriptions/{corp_it}/providers/Microsoft.Authorization/roleManagementPolicies?api-version={PIM}"), None)
        .await;
    assert_eq!(
        all_policies.status,
        StatusCode::FORBIDDEN,
        "{}",
        all_policies.body
    );
    // Her own permissions: nothing, and that is not an error.
    let perms = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01",
                rg("rg-jumpboxes")
            ),
            None,
        )
        .await;
    assert_eq!(
        (perms.status, perms.body["value"].clone()),
        (StatusCode::OK, json!([]))
    );

    // Once JIT Requester is active (and propagated), the jump boxes' subscription appears and
    // the policy can be read.
    alice_active_at_jumpboxes(&sim).await;
    let subs = pages(&sim, &alice, "/subscriptions?api-version=2022-12-01").await;
    let ids: Vec<Value> = items(&subs)
        .iter()
        .map(|s| s["subscriptionId"].clone())
        .collect();
    assert_eq!(ids, vec![json!(JUMP_SUB)]);
    let policy = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &format!(
                "{}?api-version={JIT}",
                jit_policy(&rg("rg-jumpboxes"), "westeurope")
            ),
            None,
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    let nic = sim
        .arm_as(Some(&alice), Method::GET, &format!("{}/providers/Microsoft.Network/networkInterfaces/jumpbox-win-01-nic?api-version=2024-05-01", rg("rg-jumpboxes")), None)
        .await;
    assert_eq!(
        nic.status,
        StatusCode::OK,
        "networkInterfaces/read covers the NIC: {}",
        nic.body
    );
    // Still nothing outside the role's scope.
    let secure = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &format!(
                "{}?api-version={JIT}",
                jit_policy(&rg("rg-jumpboxes-secure"), "westeurope")
            ),
            None,
        )
        .await;
    assert_eq!(secure.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn two_vms_share_a_name_each_with_its_own_policy_and_address() {
    let sim = enterprise().await;
    let dave = sim.token(DAVE).await;
    let mut found = Vec::new();
    for sub in [JUMP_SUB, LEGACY_SUB] {
        let vms = pages(&sim, &dave, &format!("/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?api-version=2024-03-01")).await;
        found.extend(
            items(&vms)
                .into_iter()
                .filter(|v| v["name"] == "jumpbox-win-01"),
        );
    }
    assert_eq!(found.len(), 2);
    assert_ne!(found[0]["id"], found[1]["id"]);
    assert_ne!(
        found[0]["properties"]["vmId"],
        found[1]["properties"]["vmId"]
    );
    let mut addresses = Vec::new();
    for vm in &found {
        let id = vm["id"].as_str().expect("id");
        let (rg_id, _) = id.split_once("/providers/").expect("rg");
        let pip = sim
            .arm_as(Some(&dave), Method::GET, &format!("{rg_id}/providers/Microsoft.Network/publicIPAddresses/jumpbox-win-01-pip?api-version=2024-07-01"), None)
            .await;
        addresses.push(pip.body["properties"]["ipAddress"].clone());
        let location = if rg_id.contains(LEGACY_SUB) {
            "northeurope"
        } else {
            "westeurope"
        };
        let policy = sim
            .arm_as(
                Some(&dave),
                Method::GET,
                &format!("{}?api-version={JIT}", jit_policy(rg_id, location)),
                None,
            )
            .await;
        assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
        assert_eq!(
            policy.body["properties"]["virtualMachines"][0]["id"].as_str(),
            Some(id)
        );
    }
    assert_eq!(addresses, vec![json!("127.0.0.20"), json!("127.0.0.23")]);
}

#[tokio::test]
async fn a_range_policy_refuses_a_single_address_and_opens_for_the_range_after_the_delay() {
    let sim = enterprise().await;
    // The echo reports alice's public address, and ARM sees her calls from it.
    let echo = sim
        .http
        .get(sim.url("/ip"))
        .send()
        .await
        .expect("ip")
        .text()
        .await
        .expect("text");
    assert_eq!(echo, ALICE_PUBLIC_IP);
    alice_active_at_jumpboxes(&sim).await;
    let alice = sim.token(ALICE).await;
    let policy_path = jit_policy(&rg("rg-jumpboxes"), "westeurope");
    let initiate = |port: Value| {
        let sim = &sim;
        let alice = alice.clone();
        let policy_path = policy_path.clone();
        async move {
            let now = sim.now().await;
            let mut port = port;
            port["number"] = json!(3389);
            port["endTimeUtc"] = json!((now + chrono::Duration::minutes(30))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            sim.arm_as(
                Some(&alice),
                Method::POST,
                &format!("{policy_path}/initiate?api-version={JIT}"),
                Some(json!({"virtualMachines": [{"id": win01(), "ports": [port]}], "justification": "INC-7"})),
            )
            .await
        }
    };
    // Her single address lies inside 84.17.32.0/20 and is still refused, given or implied.
    for port in [
        json!({"allowedSourceAddressPrefix": ALICE_PUBLIC_IP}),
        json!({}),
    ] {
        let refused = initiate(port.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{port}: {}",
            refused.body
        );
        assert!(
            refused.message().contains("is not a subset of policy"),
            "{}",
            refused.body
        );
    }
    let gate = gate_for(&sim, &win01(), 3389).await;
    let laptop = "127.0.0.1".parse().expect("ip");
    assert!(
        !gate_admits(gate, laptop, true).await,
        "closed before any request"
    );

    // The whole range is accepted: 202 Initiating, and the rule applies 5 s later.
    let opened = initiate(json!({"allowedSourceAddressPrefix": "84.17.32.0/20"})).await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    assert_eq!(
        opened.body["virtualMachines"][0]["ports"][0]["status"],
        "Initiating"
    );
    let read = || async {
        sim.arm_as(
            Some(&alice),
            Method::GET,
            &format!("{policy_path}?api-version={JIT}"),
            None,
        )
        .await
        .body
    };
    assert_eq!(ports(&read().await)[0]["status"], "Initiating");
    assert!(
        !gate_admits(gate, laptop, true).await,
        "closed while Initiating"
    );
    sim.advance(5).await;
    let after = ports(&read().await);
    assert_eq!(after[0]["status"], "Initiated", "{after:?}");
    // The laptop's loopback connection is seen at its public address, inside the range.
    assert!(gate_admits(gate, laptop, true).await, "open once Initiated");
    let kinds: Vec<String> = sim
        .events()
        .await
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .filter(|k| k.starts_with("jit.initiat"))
        .collect();
    assert_eq!(kinds, ["jit.initiating", "jit.initiated"]);
    // The other range alone is accepted too, and supersedes the first once it applies.
    let second = initiate(json!({"allowedSourceAddressPrefix": "91.198.174.0/24"})).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    assert_eq!(
        ports(&read().await)[0]["status"],
        "Initiated",
        "the older rule holds meanwhile"
    );
    sim.advance(5).await;
    let last = ports(&read().await);
    assert_eq!(
        (last[0]["status"].clone(), last[0]["statusReason"].clone()),
        (json!("Revoked"), json!("NewerRequestInitiated"))
    );
    assert!(
        !gate_admits(gate, laptop, true).await,
        "84.17.40.23 is not in 91.198.174.0/24"
    );
}

#[tokio::test]
async fn mfa_step_up_through_a_claims_request() {
    let sim = enterprise().await;
    let secure = rg("rg-jumpboxes-secure");
    // Her ordinary sign-in carries amr ["pwd"] only.
    let plain = SignIn::new(&sim).run(ALICE).await;
    let token = plain["access_token"].as_str().expect("token");
    assert_eq!(claims(token)["amr"], json!(["pwd"]));
    let refused = activate_as(&sim, token, ALICE, &secure, JIT_REQUESTER).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(
        refused.code(),
        "RoleAssignmentRequestPolicyValidationFailed"
    );
    assert_eq!(
        refused.message(),
        "The following policy rules failed: [\"MfaRule\"]"
    );
    // Asking for amr mfa gives a token with it, and the activation goes through.
    let stepped = SignIn {
        claims: Some(r#"{"access_token":{"amr":{"essential":true,"values":["mfa"]}}}"#),
        ..SignIn::new(&sim)
    }
    .run(ALICE)
    .await;
    let token = stepped["access_token"].as_str().expect("token");
    assert_eq!(claims(token)["amr"], json!(["pwd", "mfa"]));
    let granted = activate_as(&sim, token, ALICE, &secure, JIT_REQUESTER).await;
    assert_eq!(granted.status, StatusCode::CREATED, "{}", granted.body);
    assert_eq!(granted.body["properties"]["status"], "Provisioned");
}

#[tokio::test]
async fn authentication_context_step_up_gives_a_claims_challenge_and_acrs_that_survive_refresh() {
    let sim = enterprise().await;
    let finance = format!("/subscriptions/{FINANCE_SUB}/resourceGroups/rg-finance-reports");
    let plain = SignIn::new(&sim).run(ALICE).await;
    let token = plain["access_token"].as_str().expect("token");
    let refused = activate_as(&sim, token, ALICE, &finance, OWNER).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.code(), "RoleAssignmentRequestAcrsValidationFailed");
    assert_eq!(
        refused.message(),
        "&claims=%7B%22access_token%22%3A%7B%22acrs%22%3A%7B%22essential%22%3Atrue%2C%20%22value%22%3A%22c1%22%7D%7D%7D"
    );
    // MFA alone does not meet an authentication context.
    let mfa_only = token_with(&sim, ALICE, json!({"mfa": true})).await;
    let still = activate_as(&sim, &mfa_only, ALICE, &finance, OWNER).await;
    assert_eq!(still.code(), "RoleAssignmentRequestAcrsValidationFailed");

    // A refresh cannot step up: interaction_required with the claims, and the refresh token
    // stays usable.
    let challenge =
        url::form_urlencoded::parse(refused.message().trim_start_matches('&').as_bytes())
            .find(|(k, _)| k == "claims")
            .map(|(_, v)| v.into_owned())
            .expect("claims");
    assert_eq!(
        challenge,
        r#"{"access_token":{"acrs":{"essential":true, "value":"c1"}}}"#
    );
    let rt = plain["refresh_token"].as_str().expect("rt");
    let (status, body) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("claims", &challenge),
            (
                "scope",
                "https://management.azure.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("interaction_required")),
        "{body}"
    );
    assert_eq!(body["claims"], json!(challenge));
    let (status, _) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            (
                "scope",
                "https://management.azure.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Signing in with the challenge gives acrs ["c1"] and mfa, which refresh keeps.
    let stepped = SignIn {
        claims: Some(&challenge),
        ..SignIn::new(&sim)
    }
    .run(ALICE)
    .await;
    let token = stepped["access_token"].as_str().expect("token");
    assert_eq!(claims(token)["acrs"], json!(["c1"]));
    assert_eq!(claims(token)["amr"], json!(["pwd", "mfa"]));
    let (status, refreshed) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                stepped["refresh_token"].as_str().expect("rt"),
            ),
            (
                "scope",
                "https://management.azure.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, twice) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().expect("rt"),
            ),
            ("claims", &challenge),
            (
                "scope",
                "https://management.azure.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a rotated token of that sign-in meets the challenge: {twice}"
    );
    let token = twice["access_token"].as_str().expect("token");
    assert_eq!(claims(token)["acrs"], json!(["c1"]));
    let granted = activate_as(&sim, token, ALICE, &finance, OWNER).await;
    assert_eq!(granted.status, StatusCode::CREATED, "{}", granted.body);

    // The device-code flow takes a claims request too.
    let c = sim.handle.client_config();
    let grant: Value = sim
        .http
        .post(sim.url(&format!("/{}/oauth2/v2.0/devicecode", c.tenant_id)))
        .form(&[
            ("client_id", c.client_id.as_str()),
            ("scope", "https://management.azure.com/.default"),
            ("claims", &challenge),
        ])
        .send()
        .await
        .expect("devicecode")
        .json()
        .await
        .expect("JSON");
    sim.control(
        "/device",
        json!({"user_code": grant["user_code"], "upn": ALICE}),
    )
    .await;
    let (status, body) = token_form(
        &sim,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", grant["device_code"].as_str().expect("dc")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().expect("token"))["acrs"],
        json!(["c1"])
    );
}

#[tokio::test]
async fn only_the_registered_redirect_uri_is_accepted_on_any_port() {
    let sim = enterprise().await;
    let (_, challenge) = pkce();
    for (redirect, ok) in [
        ("http://localhost:53117/", true),
        ("http://localhost:1/", true),
        ("http://localhost/", true),
        ("http://127.0.0.1:53117/", false),
        ("http://localhost:53117/callback", false),
        ("https://localhost:53117/", false),
    ] {
        let r = SignIn {
            redirect,
            ..SignIn::new(&sim)
        }
        .authorize(ALICE, &challenge)
        .await;
        if ok {
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{redirect}");
        } else {
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{redirect}");
            assert!(
                r.headers().get("location").is_none(),
                "never redirected to {redirect}"
            );
            assert!(
                r.text().await.expect("page").contains("AADSTS50011"),
                "{redirect}"
            );
        }
    }
    // The token exchange checks it as well.
    let (verifier, challenge) = pkce();
    let r = SignIn::new(&sim).authorize(ALICE, &challenge).await;
    let location =
        url::Url::parse(r.headers()["location"].to_str().expect("location")).expect("url");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1
        .into_owned();
    let (status, body) = token_form(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:53117/"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([50011]));
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .starts_with("AADSTS50011: The redirect URI 'http://127.0.0.1:53117/'"),
        "{body}"
    );
}

#[tokio::test]
async fn tokens_are_rs256_and_verify_against_the_jwks() {
    let sim = enterprise().await;
    let c = sim.handle.client_config();
    let meta: Value = sim
        .http
        .get(sim.url(&format!(
            "/{}/v2.0/.well-known/openid-configuration",
            c.tenant_id
        )))
        .send()
        .await
        .expect("meta")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let jwks: Value = sim
        .http
        .get(meta["jwks_uri"].as_str().expect("jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JSON");
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    let n = B64.decode(key["n"].as_str().expect("n")).expect("n");
    let e = B64.decode(key["e"].as_str().expect("e")).expect("e");
    let tokens = SignIn::new(&sim).run(ALICE).await;
    for jwt in [
        tokens["access_token"].as_str().expect("at"),
        tokens["id_token"].as_str().expect("id"),
    ] {
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: Value =
            serde_json::from_slice(&B64.decode(parts[0]).expect("header")).expect("JSON");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], key["kid"]);
        let public = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
        let signature = B64.decode(parts[2]).expect("signature");
        public
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &signature,
            )
            .expect("the signature verifies with the published key");
        let mut forged = signature.clone();
        forged[10] ^= 1;
        assert!(public
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &forged
            )
            .is_err());
    }
    // A token from another simulator (same key, another issuer) is refused.
    let other = demo().await;
    let foreign = other.token(ALICE).await;
    let refused = sim
        .arm_as(Some(&foreign), Method::GET, &format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"), None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
}

#[tokio::test]
async fn graph_without_consent_gets_65001_and_the_refresh_token_survives() {
    let sim = enterprise().await;
    let tokens = SignIn::new(&sim).run(ALICE).await;
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let (status, body) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            (
                "scope",
                "https://graph.microsoft.com/User.ReadBasic.All offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([65001]));
    let c = sim.handle.client_config();
    assert!(
        body["error_description"].as_str().expect("text").starts_with(&format!(
            "AADSTS65001: The user or administrator has not consented to use the application with ID '{}'",
            c.client_id
        )),
        "{body}"
    );
    // The same refresh token still gets ARM tokens.
    let (status, arm) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            (
                "scope",
                "https://management.azure.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{arm}");
    assert!(sim
        .events()
        .await
        .iter()
        .any(|e| e["kind"] == "entra.consent_required"));
    // demo has consent.
    let demo = demo().await;
    let tokens = SignIn {
        redirect: "http://127.0.0.1:53117/",
        ..SignIn::new(&demo)
    }
    .run(ALICE)
    .await;
    let (status, body) = token_form(
        &demo,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
            (
                "scope",
                "https://graph.microsoft.com/User.ReadBasic.All offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn erin_the_guest_signs_in_by_her_upn_and_is_named_by_her_home_address() {
    let sim = enterprise().await;
    let tokens = SignIn::new(&sim).run(ERIN).await;
    let token = tokens["access_token"].as_str().expect("token");
    let c = claims(token);
    assert_eq!(c["unique_name"], "erin@fabrikam.example");
    assert_eq!(c["email"], "erin@fabrikam.example");
    assert_eq!(c["name"], "Erin Fabrikam");
    assert!(c.get("upn").is_none(), "{c}");
    assert!(c.get("preferred_username").is_none(), "{c}");
    assert_eq!(c["oid"], "e1170000-0000-4000-8000-000000000005");
    let eligible = pages(&sim, token, &format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()")).await;
    let eligible = items(&eligible);
    assert_eq!(eligible.len(), 1);
    assert_eq!(eligible[0]["properties"]["scope"], rg("rg-jumpboxes"));
    assert_eq!(
        eligible[0]["properties"]["expandedProperties"]["principal"]["email"],
        "erin@fabrikam.example"
    );
}

#[tokio::test]
async fn approval_stages_are_addressed_by_their_id_not_their_name() {
    let sim = enterprise().await;
    let alice = sim.token(ALICE).await;
    let request = activate_as(&sim, &alice, ALICE, &rg("rg-jumpboxes"), JIT_REQUESTER).await;
    let approval = request.body["properties"]["approvalId"]
        .as_str()
        .expect("approval")
        .rsplit('/')
        .next()
        .expect("id")
        .to_string();
    let bob = sim.token(BOB).await;
    let read = sim
        .arm_as(Some(&bob), Method::GET, &format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}?api-version={APPROVALS}"), None)
        .await;
    let stage = &read.body["properties"]["stages"][0];
    let leaf = stage["id"]
        .as_str()
        .expect("id")
        .rsplit('/')
        .next()
        .expect("leaf")
        .to_string();
    let name = stage["name"].as_str().expect("name").to_string();
    assert_ne!(leaf, name, "{stage}");
    let url = |s: &str| {
        format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{s}?api-version={APPROVALS}")
    };
    let by_name = sim.arm_as(Some(&bob), Method::GET, &url(&name), None).await;
    assert_eq!(by_name.status, StatusCode::NOT_FOUND, "{}", by_name.body);
    let decision = json!({"reviewResult": "Approve", "justification": "ok"});
    let patched = sim
        .arm_as(
            Some(&bob),
            Method::PATCH,
            &url(&name),
            Some(decision.clone()),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NOT_FOUND, "{}", patched.body);
    let by_id = sim.arm_as(Some(&bob), Method::GET, &url(&leaf), None).await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.body);
    let patched = sim
        .arm_as(Some(&bob), Method::PATCH, &url(&leaf), Some(decision))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["properties"]["reviewResult"], "Approve");
    // carol approves nothing: her inbox is an empty 200, through its pages.
    let carol = sim.token(CAROL).await;
    let inbox = pages(&sim, &carol, &format!("/providers/Microsoft.Authorization/roleAssignmentApprovals?api-version={APPROVALS}&$filter=asApprover()")).await;
    assert!(items(&inbox).is_empty());
}

#[tokio::test]
async fn root_lists_name_roles_in_the_tenant_form_which_a_policy_filter_does_not_match() {
    let sim = enterprise().await;
    let alice = sim.token(ALICE).await;
    let at = |scope: &str| {
        format!("{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()")
    };
    let at_root = items(&pages(&sim, &alice, &at("")).await);
    let narrow = at_root
        .iter()
        .find(|e| e["properties"]["scope"] == rg("rg-jumpboxes"))
        .expect("JIT Requester at rg-jumpboxes");
    let tenant_form = format!("/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}");
    let subscription_form =
        format!("/subscriptions/{JUMP_SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}");
    assert_eq!(
        narrow["properties"]["roleDefinitionId"],
        tenant_form.as_str()
    );
    assert_eq!(
        narrow["properties"]["expandedProperties"]["roleDefinition"]["id"],
        tenant_form.as_str()
    );
    let at_rg = items(&pages(&sim, &alice, &at(&rg("rg-jumpboxes"))).await);
    assert!(at_rg.iter().all(|e| e["properties"]["roleDefinitionId"]
        .as_str()
        .is_some_and(|id| id.starts_with(&format!("/subscriptions/{JUMP_SUB}/")))));
    // The policy filter compares whole ids: the tenant form names nothing at a resource group.
    let policy = |id: &str| {
        format!("{}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}&$filter=roleDefinitionId eq '{id}'", rg("rg-jumpboxes"))
    };
    let empty = sim
        .arm_as(Some(&alice), Method::GET, &policy(&tenant_form), None)
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.body["value"], json!([]));
    let found = sim
        .arm_as(
            Some(&alice),
            Method::GET,
            &policy(&subscription_form.to_uppercase()),
            None,
        )
        .await;
    assert_eq!(
        found.body["value"].as_array().map(Vec::len),
        Some(1),
        "{}",
        found.body
    );
    // demo keeps the item's own form at the root.
    let demo = demo().await;
    let listed = demo
        .get(ALICE, &format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"))
        .await;
    assert!(listed.body["value"][0]["properties"]["roleDefinitionId"]
        .as_str()
        .is_some_and(|id| id.starts_with("/subscriptions/")));
}

#[tokio::test]
async fn graph_is_consented_for_pim_only() {
    let sim = enterprise().await;
    let tokens = SignIn::new(&sim).run(FRANK).await;
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let refresh = |scope: &'static str| {
        let sim = &sim;
        let rt = rt.to_string();
        async move {
            token_form(
                sim,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    // A consented permission by name.
    let (status, named) = refresh(
        "https://graph.microsoft.com/PrivilegedEligibilitySchedule.Read.AzureADGroup offline_access",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{named}");
    let rt = named["refresh_token"].as_str().expect("rt").to_string();
    // `.default` stands for the consented ones, and not for User.ReadBasic.All.
    let (status, default) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            (
                "scope",
                "https://graph.microsoft.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{default}");
    let scp = claims(default["access_token"].as_str().expect("token"))["scp"]
        .as_str()
        .expect("scp")
        .to_string();
    assert_eq!(scp, format!("{PIM_GROUPS} {PIM_ROLES}"));
    let token = default["access_token"].as_str().expect("token");
    let mine = sim
        .graph(
            Some(token),
            Method::GET,
            &format!(
                "{PIM_GROUP_PATH}/eligibilityScheduleInstances/filterByCurrentUser(on='principal')"
            ),
            None,
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    // A permission outside the consent: AADSTS65001, and the refresh token survives.
    let rt = default["refresh_token"].as_str().expect("rt").to_string();
    let (status, refused) = token_form(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            (
                "scope",
                "https://graph.microsoft.com/PrivilegedEligibilitySchedule.Read.AzureADGroup https://graph.microsoft.com/Group.Read.All",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error_codes"], json!([65001]));
    let (status, _) = token_form(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// Where Contoso's resources live, ARM has not deployed the newest compute and network
/// api-versions yet (`deployed_api_versions`, as in a sovereign cloud): a newer one is refused
/// with `NoRegisteredProviderFound`, naming those it has; an older one is served.
#[tokio::test]
async fn a_version_not_deployed_yet_is_refused_with_those_that_are() {
    let sim = enterprise().await;
    let dave = token_with(&sim, "dave@contoso.example", json!({})).await;
    for (path, newer, deployed) in [
        (win01(), "2025-04-01", "2024-03-01"),
        (
            format!(
                "{}/providers/Microsoft.Network/networkInterfaces/jumpbox-win-01-nic",
                rg("rg-jumpboxes")
            ),
            "2025-07-01",
            "2024-05-01",
        ),
    ] {
        let refused = sim
            .arm_as(
                Some(&dave),
                Method::GET,
                &format!("{path}?api-version={newer}"),
                None,
            )
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::BAD_REQUEST, "NoRegisteredProviderFound"),
            "{}",
            refused.body
        );
        assert!(
            refused
                .message()
                .contains(&format!("API version '{newer}'"))
                && refused.message().contains(deployed),
            "{}",
            refused.message()
        );
        let served = sim
            .arm_as(
                Some(&dave),
                Method::GET,
                &format!("{path}?api-version={deployed}"),
                None,
            )
            .await;
        assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    }
}
