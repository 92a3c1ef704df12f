//! The simulator checks every ARM request body against its operation's schema in the specs
//! (`jumpgate_sim::schema`, the validator the conformance suite uses on answers) before a
//! handler sees it. A body that fails gets ARM's 400 `InvalidRequestContent`, worded as Json.NET
//! words it, naming the JSON path, line and position; and the simulator records a
//! `request.invalid` event.
//!
//! - Every official example request passes.
//! - For every validated operation, an undeclared property, a missing required property, a
//!   wrong JSON type and a value outside a closed enum are refused (or, where the operation's
//!   schema has no required property or no closed enum, the table says so and the schema is
//!   checked to have none).

use std::collections::BTreeSet;

use jumpgate_sim::schema::{self, Direction};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::conformance::{cases, example_request, examples, specs_root};
use crate::support::*;

const APPROVALS: &str = "2021-01-01-preview";
const ROLES: &str = "2022-04-01";

/// The kinds of violation every validated operation is tested for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Undeclared,
    Missing,
    WrongType,
    ClosedEnum,
}

/// What a row expects.
enum Expect {
    /// 400 `InvalidRequestContent` with a message that contains `says` and names `at`.
    Refused {
        at: &'static str,
        says: &'static str,
    },
    /// The schema lets it through: no `request.invalid` event (the handler may still refuse
    /// it on its own grounds).
    Passes,
    /// The operation's schema has nothing this kind could break: checked by walking it.
    NotApplicable,
}

/// A body: JSON, or raw bytes sent as they are.
enum Body {
    Json(Value),
    Raw(String),
}

struct Row {
    /// The spec's operationId of the operation the path is.
    op: &'static str,
    kind: Option<Kind>,
    what: &'static str,
    method: Method,
    path: String,
    body: Body,
    expect: Expect,
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn pim_request(kind: &str) -> String {
    format!(
        "/subscriptions/{SUB}/providers/Microsoft.Authorization/{kind}/{}?api-version={PIM}",
        guid()
    )
}

fn validate_path() -> String {
    format!(
        "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}/validate?api-version={PIM}",
        guid()
    )
}

fn stage_path(scoped: bool) -> String {
    let scope = if scoped {
        format!("/subscriptions/{SUB}")
    } else {
        String::new()
    };
    format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignmentApprovals/{}/stages/{}?api-version={APPROVALS}",
        guid(),
        guid()
    )
}

fn jit_path(initiate: bool) -> String {
    format!(
        "{RG}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default{}?api-version={JIT}",
        if initiate { "/initiate" } else { "" }
    )
}

fn role_definition_path() -> String {
    format!(
        "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}?api-version={ROLES}",
        guid()
    )
}

fn activation(extra: Value) -> Value {
    let mut p = json!({
        "principalId": "00000000-0000-0000-0000-000000000001",
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}"),
        "requestType": "SelfActivate",
        "justification": "INC-1",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}}
    });
    merge(&mut p, extra);
    json!({ "properties": p })
}

fn without(mut body: Value, pointer: &str, key: &str) -> Value {
    if let Some(Value::Object(map)) = body.pointer_mut(pointer) {
        map.remove(key);
    }
    body
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

fn expiration_rule(extra: Value) -> Value {
    let mut rule = json!({
        "id": "Expiration_EndUser_Assignment",
        "ruleType": "RoleManagementPolicyExpirationRule",
        "isExpirationRequired": true,
        "maximumDuration": "PT4H",
        "target": {"caller": "EndUser", "operations": ["All"], "level": "Assignment"}
    });
    merge(&mut rule, extra);
    json!({"properties": {"rules": [rule]}})
}

fn jit_policy(port: Value) -> Value {
    json!({
        "kind": "Basic",
        "properties": {"virtualMachines": [{
            "id": format!("{RG}/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01"),
            "ports": [port]
        }]}
    })
}

fn jit_port() -> Value {
    json!({"number": 3389, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"})
}

fn initiate(port: Value) -> Value {
    json!({
        "virtualMachines": [{
            "id": format!("{RG}/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01"),
            "ports": [port]
        }],
        "justification": "INC-1"
    })
}

fn initiate_port() -> Value {
    json!({"number": 3389, "endTimeUtc": "2030-01-01T00:00:00Z", "allowedSourceAddressPrefix": "203.0.113.7"})
}

fn role_definition(extra: Value) -> Value {
    let mut p = json!({
        "roleName": "JIT Requester 2",
        "type": "CustomRole",
        "permissions": [{"actions": ["Microsoft.Compute/virtualMachines/read"], "notActions": []}],
        "assignableScopes": [format!("/subscriptions/{SUB}")]
    });
    merge(&mut p, extra);
    json!({ "properties": p })
}

fn rows() -> Vec<Row> {
    use Expect::*;
    use Kind::*;
    let row = |op, kind, what, method: Method, path: String, body: Value, expect| Row {
        op,
        kind,
        what,
        method,
        path,
        body: Body::Json(body),
        expect,
    };
    let put_request = "RoleAssignmentScheduleRequests_Create";
    let validate = "RoleAssignmentScheduleRequests_Validate";
    let eligibility = "RoleEligibilityScheduleRequests_Create";
    let policy = "RoleManagementPolicies_Update";
    let jit_put = "JitNetworkAccessPolicies_CreateOrUpdate";
    let jit_initiate = "JitNetworkAccessPolicies_Initiate";
    let role_put = "RoleDefinitions_CreateOrUpdate";
    let stage_ops = [
        ("RoleAssignmentApprovalStep_Patch", Method::PATCH, false),
        ("RoleAssignmentApprovalStep_Put", Method::PUT, false),
        ("ScopeRoleAssignmentApprovalStep_Patch", Method::PATCH, true),
        ("ScopeRoleAssignmentApprovalStep_Put", Method::PUT, true),
    ];
    let eligible = |extra: Value| {
        let mut body = activation(extra);
        body["properties"]["requestType"] = json!("AdminAssign");
        body
    };
    let mut rows = vec![
        // roleAssignmentScheduleRequests PUT
        row(put_request, None, "a valid activation", Method::PUT, pim_request("roleAssignmentScheduleRequests"), activation(json!({})), Passes),
        row(put_request, Some(Undeclared), "an undeclared property", Method::PUT, pim_request("roleAssignmentScheduleRequests"), activation(json!({"foo": 1})),
            Refused { at: "properties.foo", says: "Could not find member 'foo' on object of type 'RoleAssignmentScheduleRequestProperties'." }),
        row(put_request, Some(Undeclared), "an undeclared property beside properties", Method::PUT, pim_request("roleAssignmentScheduleRequests"), {
            let mut b = activation(json!({})); b["location"] = json!("westeurope"); b },
            Refused { at: "location", says: "Could not find member 'location' on object of type 'RoleAssignmentScheduleRequest'." }),
        row(put_request, Some(Missing), "no principalId", Method::PUT, pim_request("roleAssignmentScheduleRequests"), without(activation(json!({})), "/properties", "principalId"),
            Refused { at: "properties", says: "Required property 'principalId' not found in JSON." }),
        row(put_request, Some(Missing), "a null requestType", Method::PUT, pim_request("roleAssignmentScheduleRequests"), activation(json!({"requestType": null})),
            Refused { at: "properties.requestType", says: "Required property 'requestType' expects a value but got null." }),
        row(put_request, Some(WrongType), "a number for justification", Method::PUT, pim_request("roleAssignmentScheduleRequests"), activation(json!({"justification": 5})),
            Refused { at: "properties.justification", says: "Error converting value 5 to type 'System.String'." }),
        row(put_request, Some(WrongType), "a string for scheduleInfo", Method::PUT, pim_request("roleAssignmentScheduleRequests"), activation(json!({"scheduleInfo": "PT1H"})),
            Refused { at: "properties.scheduleInfo", says: "Error converting value \"PT1H\" to type 'RoleAssignmentScheduleRequestPropertiesScheduleInfo'." }),
        row(put_request, Some(WrongType), "a start time that is no time", Method::PUT, pim_request("roleAssignmentScheduleRequests"), activation(json!({"scheduleInfo": {"startDateTime": "tomorrow"}})),
            Refused { at: "properties.scheduleInfo.startDateTime", says: "Could not convert string to DateTime: tomorrow." }),
        // requestType is modelAsString: the schema lets any string through, the handler refuses it.
        row(put_request, Some(ClosedEnum), "a requestType outside the open enum", Method::PUT, pim_request("roleAssignmentScheduleRequests"), activation(json!({"requestType": "SelfElevate"})), Passes),
        // .../validate
        row(validate, None, "a valid activation", Method::POST, validate_path(), activation(json!({})), Passes),
        row(validate, Some(Undeclared), "an undeclared property in expiration", Method::POST, validate_path(), activation(json!({"scheduleInfo": {"expiration": {"type": "AfterDuration", "hours": 1}}})),
            Refused { at: "properties.scheduleInfo.expiration.hours", says: "Could not find member 'hours' on object of type 'RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration'." }),
        row(validate, Some(Missing), "no roleDefinitionId", Method::POST, validate_path(), without(activation(json!({})), "/properties", "roleDefinitionId"),
            Refused { at: "properties", says: "Required property 'roleDefinitionId' not found in JSON." }),
        row(validate, Some(WrongType), "an object for ticketInfo.ticketNumber", Method::POST, validate_path(), activation(json!({"ticketInfo": {"ticketNumber": {"n": 1}}})),
            Refused { at: "properties.ticketInfo.ticketNumber", says: "Error converting value {\"n\":1} to type 'System.String'." }),
        row(validate, Some(ClosedEnum), "an expiration type outside the open enum", Method::POST, validate_path(), activation(json!({"scheduleInfo": {"expiration": {"type": "Never"}}})), Passes),
        // roleEligibilityScheduleRequests PUT
        row(eligibility, None, "a valid assignment", Method::PUT, pim_request("roleEligibilityScheduleRequests"), eligible(json!({})), Passes),
        row(eligibility, Some(Undeclared), "the activation's linked eligibility", Method::PUT, pim_request("roleEligibilityScheduleRequests"), eligible(json!({"linkedRoleEligibilityScheduleId": "x"})),
            Refused { at: "properties.linkedRoleEligibilityScheduleId", says: "Could not find member 'linkedRoleEligibilityScheduleId' on object of type 'RoleEligibilityScheduleRequestProperties'." }),
        row(eligibility, Some(Missing), "no requestType", Method::PUT, pim_request("roleEligibilityScheduleRequests"), without(eligible(json!({})), "/properties", "requestType"),
            Refused { at: "properties", says: "Required property 'requestType' not found in JSON." }),
        row(eligibility, Some(WrongType), "a string for ticketInfo", Method::PUT, pim_request("roleEligibilityScheduleRequests"), eligible(json!({"ticketInfo": "T-1"})),
            Refused { at: "properties.ticketInfo", says: "Error converting value \"T-1\" to type 'RoleEligibilityScheduleRequestPropertiesTicketInfo'." }),
        row(eligibility, Some(ClosedEnum), "a requestType outside the open enum", Method::PUT, pim_request("roleEligibilityScheduleRequests"), eligible(json!({"requestType": "AdminGrant"})), Passes),
        // roleManagementPolicies PATCH
        row(policy, None, "a valid expiration rule", Method::PATCH, pim_request("roleManagementPolicies"), expiration_rule(json!({})), Passes),
        row(policy, Some(Undeclared), "an approval setting on an expiration rule", Method::PATCH, pim_request("roleManagementPolicies"), expiration_rule(json!({"setting": {}})),
            Refused { at: "properties.rules[0].setting", says: "Could not find member 'setting' on object of type 'RoleManagementPolicyExpirationRule'." }),
        row(policy, Some(Missing), "a rule without ruleType", Method::PATCH, pim_request("roleManagementPolicies"), json!({"properties": {"rules": [{"id": "Expiration_EndUser_Assignment"}]}}),
            Refused { at: "properties.rules[0]", says: "Required property 'ruleType' not found in JSON." }),
        row(policy, Some(WrongType), "a string for isExpirationRequired", Method::PATCH, pim_request("roleManagementPolicies"), expiration_rule(json!({"isExpirationRequired": "yes"})),
            Refused { at: "properties.rules[0].isExpirationRequired", says: "Error converting value \"yes\" to type 'System.Boolean'." }),
        row(policy, Some(WrongType), "an object for rules", Method::PATCH, pim_request("roleManagementPolicies"), json!({"properties": {"rules": {}}}),
            Refused { at: "properties.rules", says: "Error converting value {} to type 'System.Collections.Generic.IList`1[RoleManagementPolicyRule]'." }),
        row(policy, Some(ClosedEnum), "a ruleType outside the open enum", Method::PATCH, pim_request("roleManagementPolicies"), json!({"properties": {"rules": [{"id": "x", "ruleType": "RoleManagementPolicyMagicRule"}]}}), Passes),
        // JIT policy PUT
        row(jit_put, None, "a valid policy", Method::PUT, jit_path(false), jit_policy(jit_port()), Passes),
        row(jit_put, Some(Undeclared), "the initiate's duration on a port rule", Method::PUT, jit_path(false), jit_policy({ let mut p = jit_port(); p["duration"] = json!("PT1H"); p }),
            Refused { at: "properties.virtualMachines[0].ports[0].duration", says: "Could not find member 'duration' on object of type 'JitNetworkAccessPortRule'." }),
        row(jit_put, Some(Missing), "a port without maxRequestAccessDuration", Method::PUT, jit_path(false), jit_policy(without(jit_port(), "", "maxRequestAccessDuration")),
            Refused { at: "properties.virtualMachines[0].ports[0]", says: "Required property 'maxRequestAccessDuration' not found in JSON." }),
        row(jit_put, Some(Missing), "no properties", Method::PUT, jit_path(false), json!({"kind": "Basic"}),
            Refused { at: "", says: "Required property 'properties' not found in JSON." }),
        row(jit_put, Some(WrongType), "a port number in a string", Method::PUT, jit_path(false), jit_policy({ let mut p = jit_port(); p["number"] = json!("3389"); p }),
            Refused { at: "properties.virtualMachines[0].ports[0].number", says: "Error converting value \"3389\" to type 'System.Int32'." }),
        row(jit_put, Some(ClosedEnum), "a protocol outside the open enum", Method::PUT, jit_path(false), jit_policy({ let mut p = jit_port(); p["protocol"] = json!("SCTP"); p }), Passes),
        // JIT initiate
        row(jit_initiate, None, "a valid initiate", Method::POST, jit_path(true), initiate(initiate_port()), Passes),
        row(jit_initiate, Some(Undeclared), "the portal's per-port duration", Method::POST, jit_path(true), initiate({ let mut p = initiate_port(); p["duration"] = json!("PT1H"); p }),
            Refused { at: "virtualMachines[0].ports[0].duration", says: "Could not find member 'duration' on object of type 'JitNetworkAccessPolicyInitiatePort'." }),
        row(jit_initiate, Some(Undeclared), "the policy's prefix list, which initiate does not declare", Method::POST, jit_path(true), initiate({ let mut p = initiate_port(); p["allowedSourceAddressPrefixes"] = json!(["203.0.113.7"]); p }),
            Refused { at: "virtualMachines[0].ports[0].allowedSourceAddressPrefixes", says: "Could not find member 'allowedSourceAddressPrefixes' on object of type 'JitNetworkAccessPolicyInitiatePort'." }),
        row(jit_initiate, Some(Missing), "a port without endTimeUtc", Method::POST, jit_path(true), initiate(without(initiate_port(), "", "endTimeUtc")),
            Refused { at: "virtualMachines[0].ports[0]", says: "Required property 'endTimeUtc' not found in JSON." }),
        row(jit_initiate, Some(WrongType), "an object for virtualMachines", Method::POST, jit_path(true), json!({"virtualMachines": {}}),
            Refused { at: "virtualMachines", says: "Error converting value {} to type 'System.Collections.Generic.IList`1[JitNetworkAccessPolicyInitiateVirtualMachine]'." }),
        row(jit_initiate, Some(WrongType), "an end time that is no time", Method::POST, jit_path(true), initiate({ let mut p = initiate_port(); p["endTimeUtc"] = json!("in an hour"); p }),
            Refused { at: "virtualMachines[0].ports[0].endTimeUtc", says: "Could not convert string to DateTime: in an hour." }),
        row(jit_initiate, Some(ClosedEnum), "", Method::POST, jit_path(true), json!({}), NotApplicable),
        // roleDefinitions PUT
        row(role_put, None, "a valid custom role", Method::PUT, role_definition_path(), role_definition(json!({})), Passes),
        row(role_put, Some(Undeclared), "the saved example's roleDefinition wrapper", Method::PUT, role_definition_path(), json!({"roleDefinition": {"roleName": "x"}}),
            Refused { at: "roleDefinition", says: "Could not find member 'roleDefinition' on object of type 'RoleDefinition'." }),
        row(role_put, Some(Undeclared), "createdOn, which 2022-04-01 does not declare", Method::PUT, role_definition_path(), role_definition(json!({"createdOn": "2024-01-01T00:00:00Z"})),
            Refused { at: "properties.createdOn", says: "Could not find member 'createdOn' on object of type 'RoleDefinitionProperties'." }),
        row(role_put, Some(Missing), "", Method::PUT, role_definition_path(), json!({}), NotApplicable),
        row(role_put, Some(WrongType), "a string for assignableScopes", Method::PUT, role_definition_path(), role_definition(json!({"assignableScopes": "/"})),
            Refused { at: "properties.assignableScopes", says: "Error converting value \"/\" to type 'System.Collections.Generic.IList`1[System.String]'." }),
        row(role_put, Some(WrongType), "a number in actions", Method::PUT, role_definition_path(), role_definition(json!({"permissions": [{"actions": [7]}]})),
            Refused { at: "properties.permissions[0].actions[0]", says: "Error converting value 7 to type 'System.String'." }),
        row(role_put, Some(ClosedEnum), "", Method::PUT, role_definition_path(), json!({}), NotApplicable),
    ];
    for (op, method, scoped) in stage_ops {
        rows.extend([
            row(op, None, "the schema's flat decision", method.clone(), stage_path(scoped), json!({"reviewResult": "Approve", "justification": "ok"}), Passes),
            // The official examples wrap the decision in `properties`; the spec's body is the
            // flat properties object, and ARM's deserialiser refuses the wrapper.
            row(op, Some(Undeclared), "the example's decision inside properties", method.clone(), stage_path(scoped), json!({"properties": {"reviewResult": "Approve", "justification": "ok"}}),
                Refused { at: "properties", says: "Could not find member 'properties' on object of type 'RoleAssignmentApprovalStepProperties'." }),
            row(op, Some(Undeclared), "an undeclared property in the flat decision", method.clone(), stage_path(scoped), json!({"reviewResult": "Approve", "comment": "ok"}),
                Refused { at: "comment", says: "Could not find member 'comment' on object of type 'RoleAssignmentApprovalStepProperties'." }),
            row(op, Some(Missing), "", method.clone(), stage_path(scoped), json!({}), NotApplicable),
            row(op, Some(WrongType), "an array for justification", method.clone(), stage_path(scoped), json!({"reviewResult": "Deny", "justification": ["no"]}),
                Refused { at: "justification", says: "Error converting value [\"no\"] to type 'System.String'." }),
            row(op, Some(WrongType), "a number for reviewResult", method.clone(), stage_path(scoped), json!({"reviewResult": 1}),
                Refused { at: "reviewResult", says: "Error converting value 1 to type 'System.String'." }),
            row(op, Some(ClosedEnum), "a reviewResult outside the open enum", method.clone(), stage_path(scoped), json!({"reviewResult": "Maybe"}), Passes),
        ]);
    }
    // Required properties the PUT rows cover through the validate rows' shared schema, and
    // bodies that are not what the schema describes at all.
    rows.extend([
        Row { op: put_request, kind: None, what: "a body that is not JSON", method: Method::PUT, path: pim_request("roleAssignmentScheduleRequests"), body: Body::Raw("{\"properties\": ".into()),
            expect: Refused { at: "", says: "EOF while parsing" } },
        Row { op: put_request, kind: None, what: "an empty body", method: Method::PUT, path: pim_request("roleAssignmentScheduleRequests"), body: Body::Raw("".into()),
            expect: Refused { at: "", says: "the request body is empty" } },
        Row { op: jit_initiate, kind: None, what: "an array for the body", method: Method::POST, path: jit_path(true), body: Body::Raw("[]".into()),
            expect: Refused { at: "", says: "Error converting value [] to type 'JitNetworkAccessPolicyInitiateRequest'." } },
        Row { op: eligibility, kind: None, what: "a wrong type at line 3 of an indented body", method: Method::PUT, path: pim_request("roleEligibilityScheduleRequests"),
            body: Body::Raw("{\n  \"properties\": {\n    \"principalId\": 7,\n    \"roleDefinitionId\": \"r\",\n    \"requestType\": \"AdminAssign\"\n  }\n}".into()),
            expect: Refused { at: "properties.principalId", says: "Error converting value 7 to type 'System.String'. Path 'properties.principalId', line 3, position 20." } },
        Row { op: policy, kind: None, what: "nesting deeper than the parser allows", method: Method::PATCH, path: pim_request("roleManagementPolicies"),
            body: Body::Raw("[".repeat(5000)),
            expect: Refused { at: "", says: "recursion limit exceeded" } },
    ]);
    rows
}

/// The request.invalid events recorded since `seq`.
async fn invalid_since(sim: &Sim, seq: u64) -> Vec<Value> {
    sim.events()
        .await
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap_or(0) > seq && e["kind"] == "request.invalid")
        .collect()
}

async fn last_seq(sim: &Sim) -> u64 {
    sim.events()
        .await
        .last()
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0)
}

/// Sends a row's request and checks the answer and the events against what it expects.
async fn check(sim: &Sim, token: &str, row: &Row) -> Result<(), String> {
    let label = format!("{} / {}", row.op, row.what);
    let bare = row.path.split('?').next().unwrap_or("");
    let found = schema::specs()
        .body_operation(row.method.as_str(), bare)
        .map(|op| op.spec["operationId"].as_str().unwrap_or("").to_string());
    if found.as_deref() != Some(row.op) {
        return Err(format!("{label}: the path is operation {found:?}"));
    }
    let before = last_seq(sim).await;
    let mut request = sim
        .http
        .request(row.method.clone(), sim.url(&row.path))
        .bearer_auth(token)
        .header("content-type", "application/json");
    request = match &row.body {
        Body::Json(v) => request.body(serde_json::to_vec(v).expect("JSON")),
        Body::Raw(text) => request.body(text.clone()),
    };
    let response = request.send().await.map_err(|e| format!("{label}: {e}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let events = invalid_since(sim, before).await;
    match &row.expect {
        Expect::NotApplicable => Ok(()),
        Expect::Passes if events.is_empty() => Ok(()),
        Expect::Passes => Err(format!("{label}: refused by the schema check: {events:?}")),
        Expect::Refused { at, says } => {
            let message = answer["error"]["message"].as_str().unwrap_or("");
            let prefix = "The request content was invalid and could not be deserialized: '";
            let names_path = row.kind.is_none() && at.is_empty()
                || message.contains(&format!("Path '{at}', line "));
            if status != 400
                || answer["error"]["code"] != "InvalidRequestContent"
                || !message.starts_with(prefix)
                || !message.ends_with("'.")
                || !message.contains(says)
                || !names_path
            {
                return Err(format!(
                    "{label}: expected 400 InvalidRequestContent naming '{at}' and saying {says:?}, got {status} {answer}"
                ));
            }
            match events.as_slice() {
                [event]
                    if event["method"] == row.method.as_str()
                        && event["path"] == bare
                        && event["message"] == message
                        && event["errors"].as_array().is_some_and(|e| !e.is_empty()) =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "{label}: expected one request.invalid event for it, got {other:?}"
                )),
            }
        }
    }
}

#[tokio::test]
async fn every_validated_operation_refuses_what_its_schema_refuses() {
    let sim = demo().await;
    let token = sim.token(ALICE).await;
    let rows = rows();
    let mut failures = Vec::new();
    for row in &rows {
        if let Err(e) = check(&sim, &token, row).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows fail:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The table covers every validated operation with every kind of violation, and the
    // operations have nothing to break where it says so.
    let validated: BTreeSet<String> = schema::validated_operations()
        .map(|op| op.spec["operationId"].as_str().unwrap_or("").to_string())
        .collect();
    let tabled: BTreeSet<String> = rows.iter().map(|r| r.op.to_string()).collect();
    assert_eq!(
        validated, tabled,
        "the table covers exactly the validated operations"
    );
    for op in schema::validated_operations() {
        let id = op.spec["operationId"].as_str().unwrap_or("");
        let facts = facts(op);
        for kind in [
            Kind::Undeclared,
            Kind::Missing,
            Kind::WrongType,
            Kind::ClosedEnum,
        ] {
            let of_kind: Vec<&Row> = rows
                .iter()
                .filter(|r| r.op == id && r.kind == Some(kind))
                .collect();
            assert!(!of_kind.is_empty(), "{id} has no row for {kind:?}");
            let refused = of_kind
                .iter()
                .any(|r| matches!(r.expect, Expect::Refused { .. }));
            let possible = match kind {
                Kind::Missing => facts.required,
                Kind::ClosedEnum => !facts.closed_enums.is_empty(),
                Kind::Undeclared | Kind::WrongType => true,
            };
            assert_eq!(
                refused,
                possible,
                "{id}: {kind:?} is {} by its schema ({:?}), and the table {} a refusal for it",
                if possible { "possible" } else { "impossible" },
                facts.closed_enums,
                if refused { "has" } else { "has no" },
            );
        }
    }
}

/// What an operation's request schema holds that a body could break.
struct Facts {
    required: bool,
    closed_enums: Vec<String>,
}

/// Walks an operation's body schema through `$ref`s, `allOf`, properties, items and
/// discriminated subtypes.
fn facts(op: jumpgate_sim::schema::Operation<'static>) -> Facts {
    let specs = schema::specs();
    let mut facts = Facts {
        required: false,
        closed_enums: Vec::new(),
    };
    let Some((file, body)) = op.body(specs) else {
        return facts;
    };
    let mut seen = BTreeSet::new();
    let mut stack = vec![(file, body, String::new())];
    while let Some((file, schema, name)) = stack.pop() {
        if let Some(r) = schema["$ref"].as_str() {
            let (f, n, s) = specs.resolve(file, r);
            if seen.insert((f, n.to_string())) {
                stack.push((f, s, n.to_string()));
                // Subtypes of a polymorphic definition: those whose allOf names it.
                if s.get("discriminator").is_some() {
                    let suffix = format!("/{n}");
                    let defs = specs.doc(f).and_then(|d| d["definitions"].as_object());
                    for (sub_name, sub) in defs.into_iter().flatten() {
                        let derives = sub["allOf"].as_array().is_some_and(|all| {
                            all.iter()
                                .any(|a| a["$ref"].as_str().is_some_and(|r| r.ends_with(&suffix)))
                        });
                        if derives && seen.insert((f, sub_name.clone())) {
                            stack.push((f, sub, sub_name.clone()));
                        }
                    }
                }
            }
            continue;
        }
        if schema["required"].as_array().is_some_and(|r| !r.is_empty()) {
            facts.required = true;
        }
        if schema["enum"].is_array() && schema["x-ms-enum"]["modelAsString"] != true {
            facts
                .closed_enums
                .push(format!("{name}: {}", schema["enum"]));
        }
        for sub in schema["allOf"].as_array().into_iter().flatten() {
            stack.push((file, sub, name.clone()));
        }
        for (key, sub) in schema["properties"].as_object().into_iter().flatten() {
            stack.push((file, sub, format!("{name}.{key}")));
        }
        if schema.get("items").is_some() {
            stack.push((file, &schema["items"], format!("{name}[]")));
        }
    }
    facts
}

#[tokio::test]
async fn the_official_example_requests_pass_the_check() {
    let all = examples(&specs_root());
    // The PUT approval example still names its stage `stepId`; the replay fills `stageId`.
    let mut overrides = Map::new();
    overrides.insert("stageId".into(), json!(guid()));
    let now = chrono::Utc::now();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for case in cases() {
        let request = example_request(&all, &case, &overrides, now);
        let Some(body) = request.body else { continue };
        let method = request.method.as_str();
        match schema::specs().body_operation(method, &request.path) {
            None => failures.push(format!(
                "{}: {method} {} is not a validated operation",
                case.example, request.path
            )),
            Some(_) => {
                let bytes = serde_json::to_vec(&body).expect("JSON");
                if let Err(refusal) = schema::validate_request(method, &request.path, &bytes) {
                    failures.push(format!("{}: {:?}", case.example, refusal));
                }
            }
        }
        checked.push(case.example);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for example in [
        "PutRoleAssignmentScheduleRequest.json",
        "PutRoleEligibilityScheduleRequest.json",
        "PatchPartialRoleManagementPolicy.json",
        "PatchRoleAssignmentApprovalStepById.json",
        "PutRoleAssignmentApprovalStepById.json",
        "CreateJitNetworkAccessPolicy_example.json",
        "InitiateJitNetworkAccessPolicy_example.json",
        "PutRoleDefinition.json",
    ] {
        assert!(checked.contains(&example), "{example} was not checked");
    }
}

#[test]
fn the_validator_reports_the_first_violation_where_json_net_meets_it() {
    // Two faults: the message names the first in the text, the errors list both.
    let path = "/subscriptions/s/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default";
    let body = br#"{"properties": {"virtualMachines": [{"id": "vm", "ports": [{"number": 22, "protocol": "TCP", "maxRequestAccessDuration": "PT1H", "extra": true}]}]}, "zone": 1}"#;
    // A policy PUT needs a resource group in its path; without one no operation matches.
    assert!(schema::validate_request("PUT", path, body).is_ok());
    let path = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default";
    let refusal = schema::validate_request("PUT", path, body).expect_err("refused");
    assert_eq!(refusal.operation, "JitNetworkAccessPolicies_CreateOrUpdate");
    assert_eq!(
        refusal.message,
        "The request content was invalid and could not be deserialized: 'Could not find member 'extra' on object of type 'JitNetworkAccessPortRule'. Path 'properties.virtualMachines[0].ports[0].extra', line 1, position 137.'."
    );
    assert_eq!(
        refusal.errors,
        [
            "body.properties.virtualMachines[0].ports[0].extra: property 'extra' is not declared by the spec",
            "body.zone: property 'zone' is not declared by the spec",
        ]
    );
    // A GET, or a path no spec operation with a body matches, is not checked.
    assert!(schema::validate_request("GET", path, b"nonsense").is_ok());
    assert!(schema::validate_request("POST", "/_sim/whatever", b"nonsense").is_ok());
    // A response is checked with the same rules but for nulls and offsets.
    let specs = schema::specs();
    let file = "authorization/resource-manager/Microsoft.Authorization/stable/2020-10-01/RoleAssignmentScheduleRequest.json";
    let schema = json!({"$ref": "#/definitions/RoleAssignmentScheduleRequest"});
    let value = json!({"properties": {"principalId": null, "roleDefinitionId": "r", "requestType": "SelfActivate", "scheduleInfo": {"startDateTime": "2024-01-01T00:00:00"}}});
    let text = |direction| {
        specs
            .validate(file, &schema, &value, direction)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        text(Direction::Request),
        ["body.properties.principalId: required property 'principalId' is null"]
    );
    assert_eq!(
        text(Direction::Response),
        ["body.properties.scheduleInfo.startDateTime: '2024-01-01T00:00:00' is not a date-time"]
    );
}

/// The Graph excerpt checks PIM for Groups bodies as Graph's OData reader would read them, and
/// more strictly: a property the excerpt does not declare is refused.
#[test]
fn graph_bodies_are_checked_against_the_excerpt() {
    let requests = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests";
    let stage = "/v1.0/identityGovernance/privilegedAccess/group/assignmentApprovals/a/stages/a";
    let served: BTreeSet<String> = schema::validated_graph_operations()
        .map(|op| op.spec["operationId"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        served,
        [
            "privilegedAccessGroup_AssignmentApprovalsUpdateStages",
            "privilegedAccessGroup_CreateAssignmentScheduleRequests",
            "roleManagementDirectoryBeta_RoleAssignmentApprovalsUpdateSteps",
            "roleManagementDirectory_CreateRoleAssignmentScheduleRequests",
        ]
        .into_iter()
        .map(str::to_string)
        .collect()
    );
    // Microsoft's own example request (the docs' selfActivate) passes, in either casing.
    let example = json!({
        "accessId": "member",
        "principalId": "3cce9d87-3986-4f19-8335-7ed075408ca2",
        "groupId": "2b5ed229-4072-478d-9504-a047ebd4b07d",
        "action": "selfActivate",
        "scheduleInfo": {"startDateTime": "2023-02-08T07:43:00.000Z", "expiration": {"type": "afterDuration", "duration": "PT2H"}},
        "justification": "Activate assignment."
    });
    let bytes = |v: &Value| serde_json::to_vec(v).expect("JSON");
    assert!(schema::validate_graph_request("POST", requests, &bytes(&example)).is_ok());
    let mut pascal = example.clone();
    pascal["action"] = json!("SelfActivate");
    pascal["scheduleInfo"]["expiration"]["type"] = json!("AfterDuration");
    assert!(schema::validate_graph_request("POST", requests, &bytes(&pascal)).is_ok());
    let decision = json!({"reviewResult": "Approve", "justification": "OK"});
    assert!(schema::validate_graph_request("PATCH", stage, &bytes(&decision)).is_ok());
    // A cancel has no body; a GET is not checked.
    assert!(schema::validate_graph_request("POST", &format!("{requests}/x/cancel"), b"").is_ok());
    assert!(schema::validate_graph_request("GET", requests, b"nonsense").is_ok());

    let refused = |method: &str, path: &str, body: Value| {
        schema::validate_graph_request(method, path, &bytes(&body)).expect_err("refused")
    };
    let mut extra = example.clone();
    extra["scheduleInfo"]["expiration"]["hours"] = json!(2);
    let r = refused("POST", requests, extra);
    assert_eq!(
        r.operation,
        "privilegedAccessGroup_CreateAssignmentScheduleRequests"
    );
    assert_eq!(
        r.message,
        "Property 'hours' does not exist as a declared property or extension property."
    );
    assert_eq!(
        r.errors,
        ["body.scheduleInfo.expiration.hours: property 'hours' is not declared by the spec"]
    );
    let mut missing = example.clone();
    missing.as_object_mut().expect("object").remove("groupId");
    assert_eq!(
        refused("POST", requests, missing).message,
        "The request body must contain the property 'groupId'."
    );
    let mut wrong = example.clone();
    wrong["isValidationOnly"] = json!("yes");
    assert_eq!(
        refused("POST", requests, wrong).message,
        "Cannot convert the literal 'yes' to the expected type 'Edm.Boolean'."
    );
    let mut object = example.clone();
    object["ticketInfo"] = json!("T-1");
    assert_eq!(
        refused("POST", requests, object).message,
        "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartObject' node was expected."
    );
    let mut closed = example.clone();
    closed["scheduleInfo"]["expiration"]["type"] = json!("afterAWhile");
    assert_eq!(
        refused("POST", requests, closed).message,
        "Requested value 'afterAWhile' was not found."
    );
    let mut when = example.clone();
    when["scheduleInfo"]["startDateTime"] = json!("soon");
    assert_eq!(
        refused("POST", requests, when).message,
        "Cannot convert the literal 'soon' to the expected type 'Edm.DateTimeOffset'."
    );
    assert_eq!(
        refused("PATCH", stage, json!({"justification": "OK"})).message,
        "The request body must contain the property 'reviewResult'."
    );
    assert_eq!(
        refused(
            "PATCH",
            stage,
            json!({"reviewResult": "Approve", "status": "Completed"})
        )
        .message,
        "Property 'status' does not exist as a declared property or extension property."
    );
    let not_json =
        schema::validate_graph_request("POST", requests, b"{\"accessId\":").expect_err("refused");
    assert!(not_json
        .message
        .starts_with("Unable to read JSON request payload."));
}
