//! Helpers shared by the integration tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jumpgate_sim::{SimBuilder, SimHandle};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const ALICE: &str = "alice@contoso.example";
pub const BOB: &str = "bob@contoso.example";
pub const CAROL: &str = "carol@contoso.example";
pub const DAVE: &str = "dave@contoso.example";
pub const SUB: &str = "1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d";
pub const RG: &str =
    "/subscriptions/1c9d3f2a-6e4b-4a8c-b7d5-2f0e1a3b4c5d/resourceGroups/rg-jumpboxes";
pub const JIT_REQUESTER: &str = "2e5b8a41-7c3d-4f6e-9a0b-1c2d3e4f5a6b";
pub const PIM: &str = "2020-10-01";
pub const JIT: &str = "2020-01-01";
/// The enterprise tenant's people and things that PIM for Groups and the management group
/// concern.
pub const FRANK: &str = "frank@contoso.example";
pub const HENRY: &str = "henry@contoso.example";
pub const OPERATORS: &str = "9a7e0000-0000-4000-8000-00000000c0de";
pub const ESTATE: &str = "/providers/Microsoft.Management/managementGroups/mg-jumpbox-estate";
pub const JUMP_SUB: &str = "9d2c6b4a-3e1f-4a8b-b7c5-1e0f2a3b4c93";
pub const LEGACY_SUB: &str = "2f6a8c0e-4b3d-4c5e-9a7b-8c9d0e1f2a34";
/// The PIM for Groups permissions the enterprise tenant's own app was consented to.
pub const PIM_GROUPS: &str = "PrivilegedEligibilitySchedule.Read.AzureADGroup PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup RoleManagementPolicy.Read.AzureADGroup";
pub const PIM_GROUP_PATH: &str = "/v1.0/identityGovernance/privilegedAccess/group";
pub const PIM_ROLES: &str = "RoleEligibilitySchedule.Read.Directory RoleAssignmentSchedule.ReadWrite.Directory RoleManagementPolicy.Read.Directory";
pub const ROLES_PATH: &str = "/v1.0/roleManagement/directory";
pub const GLOBAL_READER: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";
pub const SECURITY_READER: &str = "5d6b6bb7-de71-4623-b4af-96380a352509";

/// A running simulator with a client for it.
pub struct Sim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
}

/// The demo tenant with the control API and no propagation delay.
pub async fn demo() -> Sim {
    start(SimBuilder::new("demo").control(true).propagation_delay(0)).await
}

pub async fn start(builder: SimBuilder) -> Sim {
    // The workspace's reqwest uses rustls with an explicitly chosen crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let handle = builder.start().await.expect("simulator starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Sim { handle, http }
}

/// An ARM response: status, body as JSON (or `Null`), and headers.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl Sim {
    /// The bearer token the control API asks for.
    pub fn control_token(&self) -> &str {
        self.handle.control_token().expect("the control API is on")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url())
    }

    pub async fn token(&self, upn: &str) -> String {
        let body = self.control("/token", json!({"upn": upn})).await;
        body["access_token"].as_str().expect("token").to_string()
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(self.url(&format!("/_sim{path}")))
            .bearer_auth(self.control_token())
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(
            response.status().is_success(),
            "control {path} failed: {}",
            response.status()
        );
        response.json().await.expect("control JSON")
    }

    pub async fn events(&self) -> Vec<Value> {
        self.http
            .get(self.url("/_sim/events"))
            .bearer_auth(self.control_token())
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("events JSON")
    }

    pub async fn advance(&self, seconds: i64) {
        self.control("/clock/advance", json!({"seconds": seconds}))
            .await;
    }

    /// Calls ARM as `upn` (or anonymously with `None`).
    pub async fn arm(
        &self,
        upn: Option<&str>,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Reply {
        let token = match upn {
            Some(upn) => Some(self.token(upn).await),
            None => None,
        };
        self.arm_as(token.as_deref(), method, path_and_query, body)
            .await
    }

    /// Calls ARM with a given bearer token.
    pub async fn arm_as(
        &self,
        token: Option<&str>,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path_and_query));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("ARM call");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
    }

    /// A Microsoft Graph token for `upn` with these delegated permissions.
    pub async fn graph_token(&self, upn: &str, scope: &str) -> String {
        let body = self
            .control(
                "/token",
                json!({"upn": upn, "resource": "graph", "scope": scope}),
            )
            .await;
        body["access_token"].as_str().expect("token").to_string()
    }

    /// Calls Microsoft Graph with a token (a path, or an absolute `@odata.nextLink`).
    pub async fn graph(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            self.url(path)
        };
        let mut request = self.http.request(method, url);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let r = request.send().await.expect("graph");
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
    }

    /// Every item of a paged list (ARM's `nextLink` or Graph's `@odata.nextLink`), read with
    /// `token`.
    pub async fn all_items(&self, token: &str, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        for _ in 0..50 {
            let Some(url) = next.take() else {
                return out;
            };
            let reply = self.graph(Some(token), Method::GET, &url, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.body);
            out.extend(reply.body["value"].as_array().cloned().unwrap_or_default());
            next = reply.body["nextLink"]
                .as_str()
                .or(reply.body["@odata.nextLink"].as_str())
                .map(str::to_string);
        }
        panic!("more than 50 pages at {path}");
    }

    /// The events recorded so far of one kind.
    pub async fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    pub async fn get(&self, upn: &str, path_and_query: &str) -> Reply {
        self.arm(Some(upn), Method::GET, path_and_query, None).await
    }

    pub fn policy_path(&self) -> String {
        format!("{RG}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default")
    }

    /// alice asks to activate the JIT Requester role; returns the request.
    pub async fn activate(&self, upn: &str, duration: &str, justification: Option<&str>) -> Reply {
        let name = uuid::Uuid::new_v4();
        let principal = self.oid(upn);
        let mut props = json!({
            "principalId": principal,
            "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}"),
            "requestType": "SelfActivate",
            "scheduleInfo": {"startDateTime": null, "expiration": {"type": "AfterDuration", "duration": duration}},
        });
        if let Some(j) = justification {
            props["justification"] = json!(j);
        }
        self.arm(
            Some(upn),
            Method::PUT,
            &format!("{RG}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version={PIM}"),
            Some(json!({"properties": props})),
        )
        .await
    }

    /// `upn` activates the JIT Requester role and bob approves it.
    pub async fn activate_approved(&self, upn: &str, duration: &str, justification: &str) {
        let request = self.activate(upn, duration, Some(justification)).await;
        assert_eq!(request.status, StatusCode::CREATED, "{}", request.body);
        let approval = request.body["properties"]["approvalId"]
            .as_str()
            .expect("approvalId")
            .to_string();
        let decided = self.decide(BOB, &approval, "Approve", "ok").await;
        assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
    }

    pub fn oid(&self, upn: &str) -> &'static str {
        match upn {
            ALICE => "a11ce000-0000-4000-8000-000000000001",
            BOB => "b0b00000-0000-4000-8000-000000000002",
            CAROL => "ca201000-0000-4000-8000-000000000003",
            DAVE => "da7e0000-0000-4000-8000-000000000004",
            FRANK => "f2a40000-0000-4000-8000-000000000006",
            HENRY => "4e9a0000-0000-4000-8000-000000000007",
            other => panic!("no fixed oid for {other}"),
        }
    }

    /// bob's decision on the first stage of an approval.
    pub async fn decide(
        &self,
        approver: &str,
        approval_id: &str,
        result: &str,
        justification: &str,
    ) -> Reply {
        let id = approval_id.rsplit('/').next().expect("approval id");
        let approval = self
            .get(approver, &format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}?api-version=2021-01-01-preview"))
            .await;
        // A stage is addressed by the last segment of its id; its name is another GUID.
        let stage = approval.body["properties"]["stages"][0]["id"]
            .as_str()
            .and_then(|id| id.rsplit('/').next())
            .map(str::to_string)
            .unwrap_or_else(|| "missing-stage".into());
        self.arm(
            Some(approver),
            Method::PATCH,
            &format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages/{stage}?api-version=2021-01-01-preview"),
            Some(json!({"reviewResult": result, "justification": justification})),
        )
        .await
    }

    /// Initiates JIT for a VM port with an end time `minutes` from the simulator's now.
    pub async fn initiate(
        &self,
        upn: &str,
        vm: &str,
        port: u16,
        minutes: i64,
        prefix: Option<&str>,
    ) -> Reply {
        let now = self.now().await;
        let end = now + chrono::Duration::minutes(minutes);
        let mut p = json!({"number": port, "endTimeUtc": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
        if let Some(prefix) = prefix {
            p["allowedSourceAddressPrefix"] = json!(prefix);
        }
        self.arm(
            Some(upn),
            Method::POST,
            &format!("{}/initiate?api-version={JIT}", self.policy_path()),
            Some(json!({
                "virtualMachines": [{"id": format!("{RG}/providers/Microsoft.Compute/virtualMachines/{vm}"), "ports": [p]}],
                "justification": "ticket INC-1"
            })),
        )
        .await
    }

    /// The simulator's clock, read from the `Date` header as a client would.
    pub async fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let body = self
            .http
            .get(self.url("/_sim/clock"))
            .bearer_auth(self.control_token())
            .send()
            .await
            .expect("clock")
            .json::<Value>()
            .await
            .expect("clock JSON");
        chrono::DateTime::parse_from_rfc3339(body["now"].as_str().expect("now"))
            .expect("rfc3339")
            .with_timezone(&chrono::Utc)
    }

    /// The gate address for a VM port: the VM's public IP, or the firewall's with the port
    /// the newest request maps it to.
    pub async fn gate_address(&self, vm: &str, port: u16) -> std::net::SocketAddr {
        let endpoints = self
            .http
            .get(self.url("/_sim/gate"))
            .bearer_auth(self.control_token())
            .send()
            .await
            .expect("gate")
            .json::<Value>()
            .await
            .expect("gate JSON");
        let entry = endpoints
            .as_array()
            .expect("array")
            .iter()
            .find(|e| {
                e["vm"]
                    .as_str()
                    .is_some_and(|v| v.ends_with(&format!("/{vm}")))
                    && e["port"] == port
            })
            .unwrap_or_else(|| panic!("no gate endpoint for {vm}:{port} in {endpoints}"));
        entry["address"]
            .as_str()
            .expect("address")
            .parse()
            .expect("socket address")
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier: String =
        uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Decodes a JWT's claims without checking the signature.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&B64.decode(payload).expect("base64url")).expect("JSON claims")
}

/// Connects to `addr` from `source` and reports whether the gate let the connection through:
/// an admitted connection gets the backend's first bytes; a refused one is closed at once.
pub async fn gate_admits(
    addr: std::net::SocketAddr,
    source: std::net::Ipv4Addr,
    rdp: bool,
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .expect("bind source address");
    let Ok(mut stream) = socket.connect(addr).await else {
        return false;
    };
    if rdp {
        // X.224 Connection Request with an RDP negotiation request.
        let request: [u8; 19] = [3, 0, 0, 19, 14, 0xE0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
        if stream.write_all(&request).await.is_err() {
            return false;
        }
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => {
            if rdp {
                buf[0] == 3 && buf[5] == 0xD0
            } else {
                buf.starts_with(b"SSH-2.0-")
            }
        }
        _ => false,
    }
}

/// The enterprise tenant with the control API.
pub async fn enterprise() -> Sim {
    start(SimBuilder::new("enterprise").control(true)).await
}

/// The enterprise tenant with changes to its fixture text.
pub async fn enterprise_with(changes: &[(&str, &str)]) -> Sim {
    let mut text = jumpgate_sim::tenant::ENTERPRISE.to_string();
    for (from, to) in changes {
        assert!(text.contains(from), "the enterprise fixture has {from:?}");
        text = text.replacen(from, to, 1);
    }
    let fixture = jumpgate_sim::tenant::Fixture::parse("enterprise (changed)", &text)
        .expect("the changed fixture parses");
    start(SimBuilder::from_fixture(fixture).control(true)).await
}

/// Checks a Graph answer against a definition of the Graph excerpt.
pub fn assert_graph_shape(definition: &str, value: &Value) {
    assert_graph_shape_in("graph/privilegedAccessGroup.json", definition, value);
}

/// Checks a Graph answer against a definition of one of the Graph transcriptions.
pub fn assert_graph_shape_in(file: &'static str, definition: &str, value: &Value) {
    let errors = jumpgate_sim::schema::graph_specs().validate(
        file,
        &json!({"$ref": format!("#/definitions/{definition}")}),
        value,
        jumpgate_sim::schema::Direction::Response,
    );
    assert!(errors.is_empty(), "{definition}: {errors:?} in {value}");
}
