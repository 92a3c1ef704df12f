//! Management groups in the `enterprise` tenant: `mg-jumpbox-estate` holds the Jump Boxes and
//! Legacy subscriptions, and henry is eligible for JIT Requester there only.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::claims::henry_active_at_the_estate;
use crate::support::*;

const TENANT_FORM: &str = "/providers/Microsoft.Authorization/roleDefinitions/";

#[tokio::test]
async fn henry_is_eligible_at_the_management_group_and_activates_there() {
    let sim = enterprise().await;
    let henry = sim.token(HENRY).await;
    // asTarget() at the root answers his eligibility at the management group.
    let at_root = sim
        .all_items(
            &henry,
            &format!("/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"),
        )
        .await;
    assert_eq!(at_root.len(), 1, "{at_root:?}");
    let p = &at_root[0]["properties"];
    assert_eq!(p["scope"], ESTATE);
    assert_eq!(
        p["expandedProperties"]["scope"],
        json!({"id": ESTATE, "displayName": "Contoso Jump Box Estate", "type": "managementgroup"})
    );
    assert_eq!(
        p["roleDefinitionId"],
        format!("{TENANT_FORM}{JIT_REQUESTER}")
    );
    // Read under a subscription it holds, it is inherited, and named in that subscription's
    // form; under another subscription it does not apply.
    let at_sub = sim
        .all_items(
            &henry,
            &format!("/subscriptions/{LEGACY_SUB}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"),
        )
        .await;
    assert_eq!(at_sub.len(), 1, "{at_sub:?}");
    assert_eq!(
        at_sub[0]["properties"]["roleDefinitionId"],
        format!("/subscriptions/{LEGACY_SUB}/providers/Microsoft.Authorization/roleDefinitions/{JIT_REQUESTER}")
    );
    let corp_it = "0b7e4d2c-1a3f-4e5b-8c6d-9f0a1b2c3d41";
    assert!(sim
        .all_items(
            &henry,
            &format!("/subscriptions/{corp_it}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version={PIM}&$filter=asTarget()"),
        )
        .await
        .is_empty());
    // The policy at the management group: at most two hours.
    let policy = sim
        .arm_as(
            Some(&henry),
            Method::GET,
            &format!("{ESTATE}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?api-version={PIM}&$filter=roleDefinitionId eq '{TENANT_FORM}{JIT_REQUESTER}'"),
            None,
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    let rules = policy.body["value"][0]["properties"]["effectiveRules"]
        .as_array()
        .expect("rules");
    let max = rules
        .iter()
        .find(|r| r["id"] == "Expiration_EndUser_Assignment")
        .map(|r| r["maximumDuration"].clone());
    assert_eq!(max, Some(json!("PT2H")));
    assert_eq!(
        policy.body["value"][0]["properties"]["policyAssignmentProperties"]["scope"]["type"],
        "managementgroup"
    );
    let too_long = sim
        .arm_as(
            Some(&henry),
            Method::PUT,
            &format!("{ESTATE}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4()),
            Some(json!({"properties": {
                "principalId": sim.oid(HENRY),
                "roleDefinitionId": format!("{TENANT_FORM}{JIT_REQUESTER}"),
                "requestType": "SelfActivate", "justification": "long",
                "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT3H"}}}})),
        )
        .await;
    assert!(
        too_long.message().contains("ExpirationRule"),
        "{}",
        too_long.body
    );

    // Before the activation nothing in the estate is his.
    let vm = format!("/subscriptions/{JUMP_SUB}/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01?api-version=2024-03-01");
    assert_eq!(
        sim.arm_as(Some(&henry), Method::GET, &vm, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let activated = henry_active_at_the_estate(&sim).await;
    let p = &activated.body["properties"];
    assert_eq!(p["status"], "Provisioned", "no approval at the estate");
    assert_eq!(p["scope"], ESTATE);
    assert_eq!(p["expandedProperties"]["scope"]["type"], "managementgroup");
    assert_eq!(
        p["roleDefinitionId"],
        format!("{TENANT_FORM}{JIT_REQUESTER}")
    );
    // After the propagation delay the role applies in both subscriptions under the group, at
    // the VM's resource group, and nowhere else.
    sim.advance(10).await;
    assert_eq!(
        sim.arm_as(Some(&henry), Method::GET, &vm, None)
            .await
            .status,
        StatusCode::OK
    );
    let permissions = sim
        .arm_as(
            Some(&henry),
            Method::GET,
            &format!("/subscriptions/{LEGACY_SUB}/resourceGroups/rg-legacy/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"),
            None,
        )
        .await;
    assert_eq!(
        permissions.body["value"].as_array().map(Vec::len),
        Some(1),
        "{}",
        permissions.body
    );
    let subs = sim
        .all_items(&henry, "/subscriptions?api-version=2022-12-01")
        .await;
    let ids: Vec<&str> = subs
        .iter()
        .filter_map(|s| s["subscriptionId"].as_str())
        .collect();
    assert_eq!(ids, [JUMP_SUB, LEGACY_SUB]);
    let finance = "5e8a1f3b-7c2d-4b9e-a6f0-3d4c5b6a7e82";
    let elsewhere = sim
        .arm_as(
            Some(&henry),
            Method::GET,
            &format!("/subscriptions/{finance}/providers/Microsoft.Compute/virtualMachines?api-version=2024-03-01"),
            None,
        )
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::FORBIDDEN,
        "{}",
        elsewhere.body
    );
    // His activation is listed at the root with the management group's scope.
    let active = sim
        .all_items(
            &henry,
            &format!("/providers/Microsoft.Authorization/roleAssignmentScheduleInstances?api-version={PIM}&$filter=asTarget()"),
        )
        .await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["properties"]["scope"], ESTATE);
    assert_eq!(active[0]["properties"]["assignmentType"], "Activated");
}

#[tokio::test]
async fn role_definitions_are_assignable_and_named_at_the_management_group() {
    let sim = enterprise().await;
    let henry = sim.token(HENRY).await;
    let found = sim
        .all_items(
            &henry,
            &format!("{ESTATE}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter=roleName eq 'JIT Requester'"),
        )
        .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], format!("{TENANT_FORM}{JIT_REQUESTER}"));
    assert!(found[0]["properties"]["assignableScopes"]
        .as_array()
        .is_some_and(|s| s.contains(&json!(ESTATE))));
    // An admin's eligibility request at the management group is accepted there.
    let dave_at_root = enterprise_with(&[(
        "[[role_assignments]]\nprincipal = \"dave@contoso.example\"\nrole = \"Owner\"\nscope = \"/subscriptions/{sub1}\"",
        "[[role_assignments]]\nprincipal = \"dave@contoso.example\"\nrole = \"Owner\"\nscope = \"/providers/Microsoft.Management/managementGroups/3c1e7f20-8d4b-4a6e-b5c9-7e2f1a0d9c81\"",
    )])
    .await;
    let made = dave_at_root
        .arm(
            Some(DAVE),
            Method::PUT,
            &format!("{ESTATE}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/{}?api-version={PIM}", uuid::Uuid::new_v4()),
            Some(json!({"properties": {
                "principalId": dave_at_root.oid(CAROL),
                "roleDefinitionId": format!("{TENANT_FORM}{JIT_REQUESTER}"),
                "requestType": "AdminAssign",
                "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "P30D"}}}})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    // The tenant root group (an Owner there holds every subscription) lists them all.
    let dave = dave_at_root.token(DAVE).await;
    let subs = dave_at_root
        .all_items(&dave, "/subscriptions?api-version=2022-12-01")
        .await;
    assert_eq!(subs.len(), 5);
}
