//! Group-held Azure roles: access tokens carry the `groups` the user was in when they were
//! issued (or the overage claim), ARM decides group-based access from the token, and the
//! assignments a group holds are listed for its members and in `roleAssignments`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const ROLES: &str = "2022-04-01";

fn rg_jumpboxes() -> String {
    format!("/subscriptions/{JUMP_SUB}/resourceGroups/rg-jumpboxes")
}

fn policy_read() -> String {
    format!(
        "{}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default?api-version={JIT}",
        rg_jumpboxes()
    )
}

/// `upn` activates membership of JIT Operators for an hour and bob approves.
async fn join(sim: &Sim, upn: &str) {
    let token = sim.graph_token(upn, PIM_GROUPS).await;
    let asked = sim
        .graph(
            Some(&token),
            Method::POST,
            &format!("{PIM_GROUP_PATH}/assignmentScheduleRequests"),
            Some(json!({
                "accessId": "member", "principalId": sim.oid(upn), "groupId": OPERATORS,
                "action": "selfActivate", "justification": "INC-9",
                "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT1H"}},
            })),
        )
        .await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.body);
    let id = asked.body["id"].as_str().expect("id");
    let bob = sim.graph_token(BOB, PIM_GROUPS).await;
    let decided = sim
        .graph(
            Some(&bob),
            Method::PATCH,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}/stages/{id}"),
            Some(json!({"reviewResult": "Approve", "justification": "ok"})),
        )
        .await;
    assert_eq!(decided.status, StatusCode::NO_CONTENT, "{}", decided.body);
}

/// frank ends his membership (after PIM's five minutes) and its lingering passes.
async fn leave(sim: &Sim) {
    sim.advance(301).await;
    let token = sim.graph_token(FRANK, PIM_GROUPS).await;
    let ended = sim
        .graph(
            Some(&token),
            Method::POST,
            &format!("{PIM_GROUP_PATH}/assignmentScheduleRequests"),
            Some(json!({"accessId": "member", "principalId": sim.oid(FRANK), "groupId": OPERATORS, "action": "selfDeactivate"})),
        )
        .await;
    assert_eq!(ended.status, StatusCode::CREATED, "{}", ended.body);
    sim.advance(9).await;
}

#[tokio::test]
async fn the_groups_claim_is_taken_when_a_token_is_issued() {
    let sim = enterprise().await;
    let before = sim.token(FRANK).await;
    assert!(
        claims(&before).get("groups").is_none(),
        "{}",
        claims(&before)
    );
    let read = sim
        .arm_as(Some(&before), Method::GET, &policy_read(), None)
        .await;
    assert_eq!(read.status, StatusCode::FORBIDDEN, "{}", read.body);

    join(&sim, FRANK).await;
    // The token issued before the activation still names no group: ARM keeps refusing it.
    let stale = sim
        .arm_as(Some(&before), Method::GET, &policy_read(), None)
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed"),
        "{}",
        stale.body
    );
    // A token issued now carries the group (Graph's too) and passes.
    let fresh = sim.token(FRANK).await;
    assert_eq!(claims(&fresh)["groups"], json!([OPERATORS]));
    let graph = sim.graph_token(FRANK, PIM_GROUPS).await;
    assert_eq!(claims(&graph)["groups"], json!([OPERATORS]));
    let read = sim
        .arm_as(Some(&fresh), Method::GET, &policy_read(), None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let vms = sim
        .all_items(
            &fresh,
            &format!(
                "{}/providers/Microsoft.Compute/virtualMachines?api-version=2024-03-01",
                rg_jumpboxes()
            ),
        )
        .await;
    assert_eq!(vms.len(), 2, "both jump boxes of the resource group");
    let permissions = sim
        .arm_as(
            Some(&fresh),
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/permissions?api-version={ROLES}",
                rg_jumpboxes()
            ),
            None,
        )
        .await;
    assert!(
        permissions.body["value"][0]["actions"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(
                "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
            ))),
        "{}",
        permissions.body
    );
    let subs = sim
        .all_items(&fresh, "/subscriptions?api-version=2022-12-01")
        .await;
    let ids: Vec<&Value> = subs.iter().map(|s| &s["subscriptionId"]).collect();
    assert_eq!(ids, [&json!(JUMP_SUB)]);
    let list = sim
        .arm_as(
            Some(&fresh),
            Method::GET,
            &format!("/subscriptions/{JUMP_SUB}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"),
            None,
        )
        .await;
    assert_eq!(
        list.status,
        StatusCode::OK,
        "the JIT list's 403 rule counts groups: {}",
        list.body
    );

    // Once the membership is gone, that token still names the group, and ARM still honours it;
    // a token issued afterwards does not.
    leave(&sim).await;
    let kept = sim
        .arm_as(Some(&fresh), Method::GET, &policy_read(), None)
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let after = sim.token(FRANK).await;
    assert!(claims(&after).get("groups").is_none());
    let gone = sim
        .arm_as(Some(&after), Method::GET, &policy_read(), None)
        .await;
    assert_eq!(gone.status, StatusCode::FORBIDDEN, "{}", gone.body);
}

#[tokio::test]
async fn beyond_the_claim_limit_a_token_carries_the_overage_and_arm_asks_the_directory() {
    let sim = enterprise_with(&[(
        "root_lists_tenant_role_ids = true",
        "root_lists_tenant_role_ids = true\ngroups_claim_limit = 0",
    )])
    .await;
    join(&sim, FRANK).await;
    let token = sim.token(FRANK).await;
    let c = claims(&token);
    assert!(c.get("groups").is_none(), "{c}");
    assert_eq!(c["_claim_names"], json!({"groups": "src1"}));
    assert_eq!(
        c["_claim_sources"]["src1"]["endpoint"],
        format!(
            "{}/v1.0/users/{}/getMemberObjects",
            sim.handle.url(),
            sim.oid(FRANK)
        )
    );
    let read = sim
        .arm_as(Some(&token), Method::GET, &policy_read(), None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    // ARM reads the directory at each request: the same token loses the access with the group.
    leave(&sim).await;
    let gone = sim
        .arm_as(Some(&token), Method::GET, &policy_read(), None)
        .await;
    assert_eq!(gone.status, StatusCode::FORBIDDEN, "{}", gone.body);
    // Without groups no claim at all.
    assert!(claims(&sim.token(CAROL).await)
        .get("_claim_names")
        .is_none());
}

#[tokio::test]
async fn assignments_a_group_holds_are_listed_for_its_members_as_their_target() {
    let sim = enterprise().await;
    let path = format!(
        "/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?api-version={PIM}&$filter=asTarget()"
    );
    let before = sim.token(FRANK).await;
    assert!(sim.all_items(&before, &path).await.is_empty());
    join(&sim, FRANK).await;
    // The old token still names no group.
    assert!(sim.all_items(&before, &path).await.is_empty());
    let token = sim.token(FRANK).await;
    let items = sim.all_items(&token, &path).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let p = &items[0]["properties"];
    assert_eq!(p["principalId"], OPERATORS);
    assert_eq!(p["principalType"], "Group");
    assert_eq!(p["memberType"], "Group");
    assert_eq!(p["assignmentType"], "Assigned");
    assert_eq!(p["scope"], rg_jumpboxes());
    assert_eq!(
        p["expandedProperties"]["principal"],
        json!({"id": OPERATORS, "displayName": "JIT Operators", "email": null, "type": "Group"})
    );
    assert_eq!(
        p["expandedProperties"]["roleDefinition"]["displayName"],
        "JIT Requester"
    );
}

#[tokio::test]
async fn role_assignments_are_listed_for_those_who_may_read_them() {
    let sim = enterprise().await;
    henry_active_at_the_estate(&sim).await;
    let dave = sim.token(DAVE).await;
    let path = |filter: &str| {
        format!(
            "{}/providers/Microsoft.Authorization/roleAssignments?api-version={ROLES}{filter}",
            rg_jumpboxes()
        )
    };
    // Two to a page (the conformance suite checks their shape against the spec).
    let all = sim.all_items(&dave, &path("")).await;
    let held: Vec<(String, String)> = all
        .iter()
        .map(|a| {
            (
                a["properties"]["principalId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                a["properties"]["scope"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    // At the resource group: bob's Reader and the group's role; above it dave's Owner and
    // carol's Reader of the subscription, and henry's activation at the management group.
    for (principal, scope) in [
        (sim.oid(BOB).to_string(), rg_jumpboxes()),
        (OPERATORS.to_string(), rg_jumpboxes()),
        (
            sim.oid(DAVE).to_string(),
            format!("/subscriptions/{JUMP_SUB}"),
        ),
        (
            sim.oid(CAROL).to_string(),
            format!("/subscriptions/{JUMP_SUB}"),
        ),
        (sim.oid(HENRY).to_string(), ESTATE.to_string()),
    ] {
        assert!(
            held.contains(&(principal.clone(), scope.clone())),
            "{principal} at {scope} in {held:?}"
        );
    }
    assert_eq!(held.len(), 5, "{held:?}");
    let group = all
        .iter()
        .find(|a| a["properties"]["principalId"] == OPERATORS)
        .expect("the group's");
    assert_eq!(group["properties"]["principalType"], "Group");
    assert_eq!(group["type"], "Microsoft.Authorization/roleAssignments");
    assert!(group["id"]
        .as_str()
        .is_some_and(|id| id.starts_with(&format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/",
            rg_jumpboxes()
        ))));
    // Filters: one principal's, those assigned to frank (through his group), and those at or
    // above the scope.
    let one = sim
        .all_items(
            &dave,
            &path(&format!("&$filter=principalId eq '{OPERATORS}'")),
        )
        .await;
    assert_eq!(one.len(), 1);
    let franks = sim
        .all_items(
            &dave,
            &path(&format!("&$filter=assignedTo('{}')", sim.oid(FRANK))),
        )
        .await;
    assert!(franks.is_empty(), "frank holds nothing yet: {franks:?}");
    join(&sim, FRANK).await;
    let franks = sim
        .all_items(
            &dave,
            &path(&format!("&$filter=assignedTo('{}')", sim.oid(FRANK))),
        )
        .await;
    assert_eq!(
        franks.len(),
        1,
        "the group's, once he is a member: {franks:?}"
    );
    let above = sim
        .all_items(
            &dave,
            &format!("/subscriptions/{JUMP_SUB}/providers/Microsoft.Authorization/roleAssignments?api-version={ROLES}&$filter=atScope()"),
        )
        .await;
    let scopes: Vec<&str> = above
        .iter()
        .filter_map(|a| a["properties"]["scope"].as_str())
        .collect();
    assert!(
        !scopes.contains(&rg_jumpboxes().as_str()),
        "nothing below: {scopes:?}"
    );
    assert!(scopes.contains(&ESTATE), "{scopes:?}");
    let bad = sim
        .arm_as(
            Some(&dave),
            Method::GET,
            &path("&$filter=roleDefinitionId eq 'x'"),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    // alice may not read role assignments.
    let alice = sim.arm(Some(ALICE), Method::GET, &path(""), None).await;
    assert_eq!(
        (alice.status, alice.code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed"),
        "{}",
        alice.body
    );
    assert!(alice
        .message()
        .contains("'Microsoft.Authorization/roleAssignments/read'"));
    // Only the list is served.
    let put = sim
        .arm_as(
            Some(&dave),
            Method::PUT,
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={ROLES}",
                rg_jumpboxes(),
                uuid::Uuid::new_v4()
            ),
            Some(json!({"properties": {"roleDefinitionId": "x", "principalId": "y"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED, "{}", put.body);
}

/// henry activates JIT Requester at the management group (no approval there).
pub async fn henry_active_at_the_estate(sim: &Sim) -> Reply {
    let reply = sim
        .arm(
            Some(HENRY),
            Method::PUT,
            &format!("{ESTATE}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4()),
            Some(json!({"properties": {
                "principalId": sim.oid(HENRY),
                "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}"),
                "requestType": "SelfActivate",
                "justification": "estate patching",
                "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply
}
