//! Conformance to Microsoft's official specs: every example under
//! `specs/specification/**/examples/` (vendored from
//! `../shared/azure-specs`; see `specs/SOURCES.md`) that the simulator implements is
//! replayed against a tenant that holds its resources (`tests/fixtures/conformance.toml`).
//!
//! For each replay:
//! - the status code is one the example lists;
//! - every key of the example's response is in the simulator's, with the same JSON type
//!   (`null` stands for "no value" on either side; `nextLink` is optional: the simulator
//!   answers in one page);
//! - the body validates against the operation's schema in the spec file: types, required
//!   properties, closed enums (`modelAsString` enums are open), polymorphic rules by their
//!   discriminator, and no property the spec does not declare. The validator is the
//!   simulator's own (`jumpgate_sim::schema`), the one that checks every request body.
//!
//! Compute and network have no spec file in the folder, only examples; for those the check
//! is the other way round: every key the simulator returns appears in the example, with the
//! same type. Examples for operations the simulator does not serve yet are listed in
//! `NOT_SERVED`, each with its reason; an example in neither list fails the suite.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use jumpgate_sim::schema::{self, Direction, Operation};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::support::*;

/// Examples of operations the simulator does not serve, and why.
const NOT_SERVED: &[(&str, &str)] = &[
    (
        "RoleAssignments_CreateForSubscription.json",
        "Jumpgate makes no standing role assignments: admins make users eligible through PIM instead",
    ),
    (
        "NetworkSecurityGroupGet.json",
        "Jumpgate never reads NSGs: the JIT gate stands for them",
    ),
];

pub(crate) fn specs_root() -> PathBuf {
    if let Ok(dir) = std::env::var("JUMPGATE_AZURE_SPECS") {
        return PathBuf::from(dir).join("specification");
    }
    // The specs are vendored beside the crate (specs/SOURCES.md gives their provenance).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/specification")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Which side's keys must all be present on the other.
#[derive(Clone, Copy, PartialEq)]
enum Keys {
    /// Every key of the example is in the simulator's answer.
    ExampleInAnswer,
    /// Every key of the simulator's answer is in the example.
    AnswerInExample,
}

fn compare(example: &Value, actual: &Value, at: &str, keys: Keys, errors: &mut Vec<String>) {
    if example.is_null() || actual.is_null() {
        return;
    }
    if json_type(example) != json_type(actual) {
        errors.push(format!(
            "{at}: the example has a {}, the simulator a {}",
            json_type(example),
            json_type(actual)
        ));
        return;
    }
    match (example, actual) {
        // Tags are a free-form dictionary: their keys are data, not shape.
        (Value::Object(_), Value::Object(_)) if at.ends_with(".tags") => {}
        (Value::Object(e), Value::Object(a)) => {
            let (from, to, missing_side) = match keys {
                Keys::ExampleInAnswer => (e, a, "the simulator's answer"),
                Keys::AnswerInExample => (a, e, "the example"),
            };
            for key in from.keys() {
                if !to.contains_key(key) && key != "nextLink" {
                    errors.push(format!("{at}.{key}: missing from {missing_side}"));
                }
            }
            for (key, ev) in e {
                if let Some(av) = a.get(key) {
                    compare(ev, av, &format!("{at}.{key}"), keys, errors);
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            // Polymorphic lists (policy rules) pair by their discriminator, others by position.
            for (i, av) in a.iter().enumerate() {
                let partner = match av.get("ruleType") {
                    Some(tag) => e.iter().find(|ev| ev.get("ruleType") == Some(tag)),
                    None => e.first(),
                };
                if let Some(ev) = partner {
                    compare(ev, av, &format!("{at}[{i}]"), keys, errors);
                }
            }
        }
        _ => {}
    }
}

/// Where an example's operation is described.
pub(crate) enum Op {
    /// Found through the spec files' `x-ms-examples`.
    Auto,
    /// A spec operation the example is not linked from (it lives in another version folder).
    Spec(&'static str, &'static str, &'static str),
    /// No spec file: a path template and no schema.
    Template(&'static str, &'static str),
}

/// What must exist before an example is replayed, and the parameters that must change so the
/// example names it.
#[derive(Clone, Copy)]
pub(crate) enum Setup {
    None,
    /// Replay this other example first.
    Example(&'static str),
    /// A request by another user waits for the example caller's approval.
    PendingApproval,
    /// The example caller's own request, with the example's name, waits for approval.
    PendingOwnRequest,
    /// The fixture's eligibility that the example creates is removed first (by an
    /// `AdminRemove` request), and then, with `true`, created by the example's PUT.
    FreshEligibility(bool),
}

pub(crate) struct Case {
    pub example: &'static str,
    op: Op,
    pub setup: Setup,
    params: fn() -> Value,
    /// Keys the simulator returns that this example happens not to show, with the reason.
    extra: &'static [&'static str],
    /// Whether the example's body is sent without the `properties` wrapper it shows.
    unwrap: bool,
}

const JIT_SUB: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";
const PIM_SUB: &str = "dfa2a084-766f-4003-8ae1-c4aeb893a99f";
const CALLER: &str = "user@my-tenant.com";

fn no_params() -> Value {
    json!({})
}

pub(crate) fn cases() -> Vec<Case> {
    let case = |example, op, setup, params| Case {
        example,
        op,
        setup,
        params,
        extra: &[],
        unwrap: false,
    };
    vec![
        case("InitiateJitNetworkAccessPolicy_example.json", Op::Auto, Setup::None, no_params),
        case("GetJitNetworkAccessPolicy_example.json", Op::Auto, Setup::Example("InitiateJitNetworkAccessPolicy_example.json"), no_params),
        case("GetJitNetworkAccessPoliciesSubscription_example.json", Op::Auto, Setup::Example("InitiateJitNetworkAccessPolicy_example.json"), no_params),
        case("GetJitNetworkAccessPoliciesResourceGroupLocation_example.json", Op::Auto, Setup::Example("InitiateJitNetworkAccessPolicy_example.json"), no_params),
        case("CreateJitNetworkAccessPolicy_example.json", Op::Auto, Setup::None, no_params),
        case("DeleteJitNetworkAccessPolicy_example.json", Op::Auto, Setup::None, no_params),
        case("PutRoleAssignmentScheduleRequest.json", Op::Auto, Setup::None, no_params),
        case("GetRoleAssignmentScheduleRequestByName.json", Op::Auto, Setup::Example("PutRoleAssignmentScheduleRequest.json"), no_params),
        case("GetRoleAssignmentScheduleRequestByScope.json", Op::Auto, Setup::Example("PutRoleAssignmentScheduleRequest.json"), no_params),
        case("GetRoleAssignmentScheduleInstancesByScope.json", Op::Auto, Setup::Example("PutRoleAssignmentScheduleRequest.json"), no_params),
        case("CancelRoleAssignmentScheduleRequestByName.json", Op::Auto, Setup::PendingOwnRequest, no_params),
        case("GetRoleEligibilityScheduleInstancesByScope.json", Op::Auto, Setup::None, no_params),
        case("GetRoleManagementPolicyByName.json", Op::Auto, Setup::None, no_params),
        case("PatchPartialRoleManagementPolicy.json", Op::Auto, Setup::None, no_params),
        case("PutRoleEligibilityScheduleRequest.json", Op::Auto, Setup::FreshEligibility(false), no_params),
        case("GetRoleEligibilityScheduleRequestByName.json", Op::Auto, Setup::FreshEligibility(true), no_params),
        case("GetRoleManagementPolicyAssignmentByScope.json", Op::Auto, Setup::None, no_params),
        case("GetRoleAssignmentApprovals.json", Op::Auto, Setup::PendingApproval, no_params),
        // The decision examples wrap the body in `properties`, while the spec's body parameter
        // is the flat `RoleAssignmentApprovalStepProperties` (the simulator refuses the wrapped
        // form as ARM's deserialiser does); the schema wins, so the replay sends the example's
        // own values unwrapped.
        Case { unwrap: true, ..case("PatchRoleAssignmentApprovalStepById.json", Op::Auto, Setup::PendingApproval, no_params) },
        Case { unwrap: true, ..case("PutRoleAssignmentApprovalStepById.json", Op::Auto, Setup::PendingApproval, no_params) },
        case("GetRoleDefinitionByName.json", Op::Auto, Setup::None, || {
            json!({"scope": format!("subscriptions/{PIM_SUB}"), "roleDefinitionId": "c8d4ff99-41c3-41a8-9f60-21dfdad59608"})
        }),
        case("GetRoleDefinitionById.json", Op::Auto, Setup::None, || {
            json!({"roleId": format!("subscriptions/{PIM_SUB}/providers/Microsoft.Authorization/roleDefinitions/c8d4ff99-41c3-41a8-9f60-21dfdad59608")})
        }),
        // The saved example's body wraps the role in `roleDefinition` without `properties`;
        // the schema wins, so the replay sends the schema's shape with the example's values.
        case("PutRoleDefinition.json", Op::Auto, Setup::None, || {
            json!({
                "scope": format!("subscriptions/{PIM_SUB}"),
                "roleDefinitionId": "3c9f8a52-1d4e-4b7a-9c2f-6e5d4c3b2a19",
                "body": {"properties": {"roleName": "Role name", "description": "Role description", "type": "CustomRole",
                    "assignableScopes": [format!("/subscriptions/{PIM_SUB}")],
                    "permissions": [{"actions": ["action"], "notActions": [], "dataActions": ["dataAction"], "notDataActions": []}]}}
            })
        }),
        case("GetSubscriptions.json", Op::Spec("resources/resource-manager/Microsoft.Resources/subscriptions/stable/2022-12-01/subscriptions.json", "get", "/subscriptions"), Setup::None, no_params),
        case(
            "GetPermissions.json",
            Op::Spec(
                "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json",
                "get",
                "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/providers/Microsoft.Authorization/permissions",
            ),
            Setup::None,
            || json!({"subscriptionId": PIM_SUB, "resourceGroupName": "rg1"}),
        ),
        case(
            "GetResourcePermissions.json",
            Op::Spec(
                "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json",
                "get",
                "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/providers/{resourceProviderNamespace}/{parentResourcePath}/{resourceType}/{resourceName}/providers/Microsoft.Authorization/permissions",
            ),
            Setup::None,
            || json!({"subscriptionId": JIT_SUB, "resourceGroupName": "myRg1", "resourceProviderNamespace": "Microsoft.Compute", "parentResourcePath": "", "resourceType": "virtualMachines", "resourceName": "vm1"}),
        ),
        case(
            "VirtualMachine_Get.json",
            Op::Template("get", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{vmName}"),
            Setup::None,
            || json!({"subscriptionId": JIT_SUB, "resourceGroupName": "myRg1", "vmName": "vm1", "$expand": null}),
        ),
        case(
            "VirtualMachine_ListAll_MaximumSet_Gen.json",
            Op::Template("get", "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/virtualMachines"),
            Setup::None,
            || json!({"subscriptionId": JIT_SUB, "statusOnly": null, "$filter": null, "$expand": null}),
        ),
        case(
            "NetworkInterfaceGet.json",
            Op::Template("get", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkInterfaces/{networkInterfaceName}"),
            Setup::None,
            || json!({"subscriptionId": JIT_SUB, "resourceGroupName": "myRg1", "networkInterfaceName": "vm1-nic"}),
        ),
        // The example's address is Dynamic and not yet allocated, so it has no ipAddress;
        // a jump box's Static address always has one, and clients need it.
        Case {
            extra: &["ipAddress"],
            ..case(
            "PublicIpAddressGet.json",
            Op::Template("get", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/publicIPAddresses/{publicIpAddressName}"),
            Setup::None,
            || json!({"subscriptionId": JIT_SUB, "resourceGroupName": "myRg1", "publicIpAddressName": "vm1-pip"}),
        )
        },
    ]
}

/// Every example file, by file name.
pub(crate) fn examples(root: &Path) -> HashMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut HashMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.components().any(|c| c.as_os_str() == "examples")
                && path.extension().is_some_and(|e| e == "json")
            {
                let name = path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .to_string();
                assert!(
                    out.insert(name.clone(), path.clone()).is_none(),
                    "two examples are named {name}"
                );
            }
        }
    }
    let mut out = HashMap::new();
    walk(root, &mut out);
    out
}

/// The spec operation an example belongs to.
fn find_operation(op: &Op, example: &str) -> Option<Operation<'static>> {
    let specs = schema::specs();
    let link = format!("/{example}");
    let found = match op {
        Op::Template(..) => return None,
        Op::Spec(file, method, template) => specs
            .operations()
            .find(|o| o.file == *file && o.method == *method && o.template == *template),
        Op::Auto => specs.operations().find(|o| {
            o.spec["x-ms-examples"].as_object().is_some_and(|ex| {
                ex.values()
                    .any(|e| e["$ref"].as_str().is_some_and(|r| r.ends_with(&link)))
            })
        }),
    };
    Some(
        found.unwrap_or_else(|| panic!("{example} is not linked from any embedded spec operation")),
    )
}

/// Moves times in a request body to the simulator's present: the examples were written
/// years ago, and an end time in the past is rightly refused.
fn refresh_times(value: &mut Value, now: chrono::DateTime<chrono::Utc>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v.is_string()) {
                    ("endTimeUtc", true) => {
                        *v = json!((now + chrono::Duration::hours(1)).to_rfc3339())
                    }
                    ("startDateTime", true) => *v = json!(now.to_rfc3339()),
                    _ => refresh_times(v, now),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| refresh_times(v, now)),
        _ => {}
    }
}

struct Outcome {
    status: u16,
    body: Value,
    example: Value,
    schema: Option<(&'static str, &'static Value)>,
}

/// The request an example makes, adjusted as the replay sends it.
pub(crate) struct ExampleRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub example: Value,
    /// The schema of the answer the example shows, and the spec file it is read in.
    pub schema: Option<(&'static str, &'static Value)>,
}

/// Builds the request of `case`'s example: its parameters (with `overrides`) fill the path
/// template and the query, and its body has its times moved to `now`.
pub(crate) fn example_request(
    all: &HashMap<String, PathBuf>,
    case: &Case,
    overrides: &Map<String, Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> ExampleRequest {
    let example_path = all
        .get(case.example)
        .unwrap_or_else(|| panic!("no example file {}", case.example));
    let example: Value =
        serde_json::from_str(&std::fs::read_to_string(example_path).expect("read"))
            .expect("example JSON");
    let mut params = example["parameters"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in overrides
        .iter()
        .chain((case.params)().as_object().expect("object").iter())
    {
        params.insert(k.clone(), v.clone());
    }
    let specs = schema::specs();
    let mut query: Vec<(String, String)> = Vec::new();
    let mut body = None;
    let (method, template, schema) = match find_operation(&case.op, case.example) {
        Some(op) => {
            for p in op.parameters() {
                let (_, ref_name, p) = match p["$ref"].as_str() {
                    Some(r) => specs.resolve(op.file, r),
                    None => (op.file, "", p),
                };
                // Shared parameters whose file is not in the folder: the api-version is the
                // only one that travels in the query; path parameters fill the template below.
                let name = match p["name"].as_str() {
                    Some(n) => n.to_string(),
                    None if ref_name.contains("ApiVersion") => "api-version".to_string(),
                    None => continue,
                };
                let location = p["in"].as_str().unwrap_or("query");
                match (location, params.get(&name)) {
                    ("query", Some(Value::String(v))) => query.push((name, v.clone())),
                    // Some examples leave the declared body parameter empty and carry the
                    // request under `body`.
                    ("body", Some(v)) => {
                        let empty = v.as_object().is_some_and(Map::is_empty);
                        body = Some(if empty {
                            params.get("body").cloned().unwrap_or(v.clone())
                        } else {
                            v.clone()
                        });
                    }
                    _ => {}
                }
            }
            let status_schema = example["responses"]
                .as_object()
                .and_then(|r| r.keys().next().cloned())
                .map(|status| &op.spec["responses"][status]["schema"])
                .filter(|s| s.is_object());
            (
                op.method.to_string(),
                op.template.to_string(),
                status_schema.map(|s| (op.file, s)),
            )
        }
        None => {
            let Op::Template(method, template) = case.op else {
                panic!("{} is not linked from any spec operation", case.example)
            };
            for (k, v) in &params {
                if let Value::String(v) = v {
                    if !template.contains(&format!("{{{k}}}")) {
                        query.push((k.clone(), v.clone()));
                    }
                }
            }
            (method.to_string(), template.to_string(), None)
        }
    };
    let mut path = template.clone();
    for (k, v) in &params {
        if let Some(text) = v.as_str() {
            path = path.replace(&format!("{{{k}}}"), text);
        }
    }
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    assert!(
        !path.contains('{'),
        "{}: unfilled path {path}",
        case.example
    );
    if case.unwrap {
        body = body.map(|b| b.get("properties").cloned().unwrap_or(b));
    }
    if let Some(b) = body.as_mut() {
        refresh_times(b, now);
    }
    ExampleRequest {
        method: Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
        path,
        query,
        body,
        example,
        schema,
    }
}

async fn replay(
    sim: &Sim,
    all: &HashMap<String, PathBuf>,
    case: &Case,
    overrides: &Map<String, Value>,
) -> Outcome {
    let request = example_request(all, case, overrides, sim.now().await);
    let url =
        reqwest::Url::parse_with_params(&sim.url(&request.path), &request.query).expect("url");
    let token = sim.token(CALLER).await;
    let mut http = sim.http.request(request.method, url).bearer_auth(token);
    if let Some(b) = &request.body {
        http = http.json(b);
    }
    let response = http.send().await.expect("replay");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    Outcome {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        example: request.example,
        schema: request.schema,
    }
}

async fn prepare(sim: &Sim, all: &HashMap<String, PathBuf>, setup: Setup) -> Map<String, Value> {
    let mut overrides = Map::new();
    match setup {
        Setup::None => {}
        Setup::Example(name) => {
            let case = cases()
                .into_iter()
                .find(|c| c.example == name)
                .expect("setup case");
            let out = Box::pin(replay(sim, all, &case, &Map::new())).await;
            assert!(
                out.status < 300,
                "setup {name} failed: {} {}",
                out.status,
                out.body
            );
        }
        Setup::FreshEligibility(put) => {
            let body = json!({"properties": {
                "principalId": "a3bb8764-cb92-4276-9d2a-ca1e895e55ea",
                "roleDefinitionId": format!("/subscriptions/{PIM_SUB}/providers/Microsoft.Authorization/roleDefinitions/c8d4ff99-41c3-41a8-9f60-21dfdad59608"),
                "requestType": "AdminRemove"}});
            let removed = sim
                .arm(Some(CALLER), Method::PUT, &format!("/subscriptions/{PIM_SUB}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/{}?api-version=2020-10-01", uuid::Uuid::new_v4()), Some(body))
                .await;
            assert_eq!(removed.status, 201, "{}", removed.body);
            if put {
                let case = cases()
                    .into_iter()
                    .find(|c| c.example == "PutRoleEligibilityScheduleRequest.json")
                    .expect("put case");
                let out = Box::pin(replay(sim, all, &case, &Map::new())).await;
                assert_eq!(out.status, 201, "{}", out.body);
            }
        }
        Setup::PendingApproval | Setup::PendingOwnRequest => {
            let (who, name) = match setup {
                Setup::PendingApproval => {
                    ("requester@my-tenant.com", uuid::Uuid::new_v4().to_string())
                }
                _ => (CALLER, "fea7a502-9a96-4806-a26f-eee560e52045".to_string()),
            };
            let principal = sim.get(who, "/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01&$filter=asTarget()").await;
            let principal = principal.body["value"][0]["properties"]["principalId"]
                .as_str()
                .expect("principal")
                .to_string();
            let body = json!({"properties": {
                "principalId": principal,
                "roleDefinitionId": format!("/subscriptions/{PIM_SUB}/providers/Microsoft.Authorization/roleDefinitions/7d0a4b3c-9f1e-4c2b-8a6d-5e4f3a2b1c0d"),
                "requestType": "SelfActivate",
                "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}}}});
            let created = sim
                .arm(Some(who), Method::PUT, &format!("/subscriptions/{PIM_SUB}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}?api-version=2020-10-01"), Some(body))
                .await;
            assert_eq!(
                created.body["properties"]["status"], "PendingApproval",
                "{}",
                created.body
            );
            let approval = created.body["properties"]["approvalId"]
                .as_str()
                .expect("approval")
                .rsplit('/')
                .next()
                .expect("id")
                .to_string();
            let stages = sim.get(CALLER, &format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}?api-version=2021-01-01-preview")).await;
            // A stage is addressed by the last segment of its id (its name differs).
            let stage = stages.body["properties"]["stages"][0]["id"]
                .as_str()
                .and_then(|id| id.rsplit('/').next())
                .expect("stage")
                .to_string();
            overrides.insert("approvalId".into(), json!(approval));
            overrides.insert("stageId".into(), json!(stage));
        }
    }
    overrides
}

#[tokio::test]
async fn every_example_is_replayed_or_listed_as_not_served() {
    let root = specs_root();
    let all = examples(&root);
    let replayed: BTreeSet<&str> = cases().iter().map(|c| c.example).collect();
    let skipped: BTreeSet<&str> = NOT_SERVED.iter().map(|(n, _)| *n).collect();
    let unaccounted: Vec<&String> = all
        .keys()
        .filter(|n| !replayed.contains(n.as_str()) && !skipped.contains(n.as_str()))
        .collect();
    assert!(
        unaccounted.is_empty(),
        "examples neither replayed nor listed in NOT_SERVED: {unaccounted:?}"
    );
    for name in replayed.iter().chain(&skipped) {
        assert!(
            all.contains_key(*name),
            "{name} is listed but no such example exists"
        );
    }
}

#[tokio::test]
async fn the_simulator_answers_the_official_examples_in_their_shapes() {
    let all = examples(&specs_root());
    let fixture = jumpgate_sim::tenant::Fixture::parse(
        "conformance",
        include_str!("../fixtures/conformance.toml"),
    )
    .expect("fixture");
    let mut failures = Vec::new();
    for case in cases() {
        // A fresh tenant per example, so each runs against exactly what it names.
        let sim =
            start(jumpgate_sim::SimBuilder::from_fixture(fixture.clone()).control(true)).await;
        let overrides = prepare(&sim, &all, case.setup).await;
        let out = replay(&sim, &all, &case, &overrides).await;
        let mut errors = Vec::new();
        let responses = out.example["responses"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let status = out.status.to_string();
        match responses.get(&status) {
            None => errors.push(format!(
                "status {} is not among the example's {:?}: {}",
                out.status,
                responses.keys().collect::<Vec<_>>(),
                out.body
            )),
            Some(expected) => {
                let keys = if matches!(case.op, Op::Template(..)) {
                    Keys::AnswerInExample
                } else {
                    Keys::ExampleInAnswer
                };
                compare(&expected["body"], &out.body, "body", keys, &mut errors);
                errors.retain(|e| {
                    !case
                        .extra
                        .iter()
                        .any(|k| e.contains(&format!(".{k}: missing from the example")))
                });
                match &out.schema {
                    Some((file, schema)) if !out.body.is_null() => errors.extend(
                        schema::specs()
                            .validate(file, schema, &out.body, Direction::Response)
                            .iter()
                            .map(ToString::to_string),
                    ),
                    None if !matches!(case.op, Op::Template(..)) && !expected["body"].is_null() => {
                        errors
                            .push("the spec operation declares no schema for this response".into())
                    }
                    _ => {}
                }
            }
        }
        if !errors.is_empty() {
            failures.push(format!("{}:\n  {}", case.example, errors.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} examples do not conform:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_validator_catches_what_it_should() {
    let specs = schema::specs();
    let file = "security/resource-manager/Microsoft.Security/stable/2020-01-01/jitNetworkAccessPolicies.json";
    let schema = json!({"$ref": "#/definitions/JitNetworkAccessPolicy"});
    let good = json!({"properties": {"virtualMachines": [{"id": "x", "ports": [{"number": 22, "protocol": "TCP", "maxRequestAccessDuration": "PT1H"}]}]}});
    let errors = specs.validate(file, &schema, &good, Direction::Response);
    assert!(errors.is_empty(), "{errors:?}");
    // protocol is an open enum (modelAsString), so SCTP passes; status on a request is not checked here.
    let bad = json!({"invented": 1, "properties": {"virtualMachines": [{"id": "x", "ports": [{"number": "22", "protocol": "SCTP"}, {"number": 3389}]}]}});
    let text = specs
        .validate(file, &schema, &bad, Direction::Response)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for expected in [
        "body.invented: property 'invented' is not declared",
        "body.properties.virtualMachines[0].ports[0].number: expected integer",
        "body.properties.virtualMachines[0].ports[1]: required property 'maxRequestAccessDuration' is missing",
        "body.properties.virtualMachines[0].ports[1]: required property 'protocol' is missing",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    // A closed enum (LocationType is not modelAsString) and an answer's date-time.
    let subscriptions =
        "resources/resource-manager/Microsoft.Resources/subscriptions/stable/2022-12-01/subscriptions.json";
    let location = json!({"$ref": "#/definitions/Location"});
    let found = specs.validate(
        subscriptions,
        &location,
        &json!({"name": "moon", "type": "Moon"}),
        Direction::Response,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].to_string(),
        "body.type: 'Moon' is not one of the closed enum [\"Region\", \"EdgeZone\"]"
    );
    let mut shape = Vec::new();
    compare(
        &json!({"a": 1, "b": {"c": "x"}}),
        &json!({"a": "1", "b": {}}),
        "body",
        Keys::ExampleInAnswer,
        &mut shape,
    );
    assert_eq!(shape.len(), 2, "{shape:?}");
}

/// The library embeds every spec file of the folder, so the simulator checks requests
/// against exactly the specs the suite replays.
#[test]
fn every_spec_file_is_embedded() {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "examples") {
                    walk(root, &path, out);
                }
            } else if path.extension().is_some_and(|e| e == "json") {
                let relative = path.strip_prefix(root).expect("under root");
                out.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/specification");
    let mut on_disk = BTreeSet::new();
    walk(&root, &root, &mut on_disk);
    let embedded: BTreeSet<String> = schema::specs()
        .files()
        .map(|(path, doc)| {
            assert!(doc.is_object(), "{path} does not parse");
            path.to_string()
        })
        .collect();
    assert_eq!(on_disk, embedded);
}

/// The library embeds the Graph excerpt it checks Graph bodies against, and the excerpt's
/// references all resolve.
#[test]
fn the_graph_excerpt_is_embedded_and_whole() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/graph");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("specs/graph")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| format!("graph/{}", p.file_name().expect("name").to_string_lossy()))
        .collect();
    let embedded: BTreeSet<String> = schema::graph_specs()
        .files()
        .map(|(path, doc)| {
            assert!(doc.is_object(), "{path} does not parse");
            path.to_string()
        })
        .collect();
    assert_eq!(on_disk, embedded);
    for (path, doc) in schema::graph_specs().files() {
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap_or("");
            let (file, _, _) = schema::graph_specs().resolve(path, target);
            let pointer = target.split_once('#').map(|(_, p)| p).unwrap_or("");
            let doc = schema::graph_specs()
                .files()
                .find(|(p, _)| *p == file)
                .map(|(_, d)| d);
            assert!(
                doc.is_some_and(|d| d.pointer(pointer).is_some()),
                "{path}: {target} does not resolve"
            );
        }
    }
}

/// `roleAssignments` lists (no official example shows one) answer in the spec's
/// `RoleAssignmentListResult` shape, a group's assignment among them.
#[tokio::test]
async fn role_assignment_lists_answer_in_the_specs_shape() {
    let sim = start(jumpgate_sim::SimBuilder::new("enterprise").control(true)).await;
    let dave = sim.token(DAVE).await;
    let mut next = format!(
        "/subscriptions/{JUMP_SUB}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
    );
    let mut types = BTreeSet::new();
    for _ in 0..20 {
        let reply = sim.arm_as(Some(&dave), Method::GET, &next, None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let errors = schema::specs().validate(
            "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json",
            &json!({"$ref": "#/definitions/RoleAssignmentListResult"}),
            &reply.body,
            Direction::Response,
        );
        assert!(errors.is_empty(), "{errors:?}");
        for item in reply.body["value"].as_array().into_iter().flatten() {
            types.insert(
                item["properties"]["principalType"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        match reply.body["nextLink"].as_str() {
            Some(link) => next = link[sim.handle.url().len()..].to_string(),
            None => break,
        }
    }
    assert_eq!(
        types,
        ["Group".to_string(), "User".to_string()]
            .into_iter()
            .collect()
    );
}
