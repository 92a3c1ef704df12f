//! Microsoft Graph's PIM for Groups in the `enterprise` tenant: frank (and alice) may activate
//! membership of "JIT Operators", which holds JIT Requester at `rg-jumpboxes`, with bob's
//! approval. Eligibilities, activations and their requests, approvals, policies, groups,
//! permissions, request bodies checked against the Graph excerpt, and PIM's timing rules.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

fn requests() -> String {
    format!("{PIM_GROUP_PATH}/assignmentScheduleRequests")
}

/// A membership request body for `upn`.
fn membership(sim: &Sim, upn: &str, action: &str, duration: &str) -> Value {
    json!({
        "accessId": "member",
        "principalId": sim.oid(upn),
        "groupId": OPERATORS,
        "action": action,
        "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": duration}},
        "justification": "INC-7 patching",
    })
}

async fn post_request(sim: &Sim, token: &str, body: Value) -> Reply {
    sim.graph(Some(token), Method::POST, &requests(), Some(body))
        .await
}

async fn decide(sim: &Sim, token: &str, id: &str, result: &str, justification: &str) -> Reply {
    sim.graph(
        Some(token),
        Method::PATCH,
        &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}/stages/{id}"),
        Some(json!({"reviewResult": result, "justification": justification})),
    )
    .await
}

/// `upn` asks to activate the membership for `duration` and bob approves; returns the request
/// id.
async fn join_approved(sim: &Sim, upn: &str, duration: &str) -> String {
    let token = sim.graph_token(upn, PIM_GROUPS).await;
    let asked = post_request(sim, &token, membership(sim, upn, "selfActivate", duration)).await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.body);
    let id = asked.body["id"].as_str().expect("id").to_string();
    let bob = sim.graph_token(BOB, PIM_GROUPS).await;
    let decided = decide(sim, &bob, &id, "Approve", "on call").await;
    assert_eq!(decided.status, StatusCode::NO_CONTENT, "{}", decided.body);
    id
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{}",
        reply.body
    );
    assert!(
        reply.body["error"]["innerError"]["request-id"].is_string(),
        "Graph's error shape: {}",
        reply.body
    );
}

#[tokio::test]
async fn frank_activates_his_membership_with_bobs_approval() {
    let sim = enterprise().await;
    let frank = sim.graph_token(FRANK, PIM_GROUPS).await;
    // His eligibility, with the group expanded.
    let eligible = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/eligibilityScheduleInstances/filterByCurrentUser(on='principal')?$expand=group"),
            None,
        )
        .await;
    assert_eq!(eligible.status, StatusCode::OK, "{}", eligible.body);
    assert_graph_shape(
        "privilegedAccessGroupEligibilityScheduleInstanceCollectionResponse",
        &eligible.body,
    );
    let items = eligible.body["value"].as_array().expect("value");
    assert_eq!(items.len(), 1, "{}", eligible.body);
    assert_eq!(items[0]["groupId"], OPERATORS);
    assert_eq!(items[0]["accessId"], "member");
    assert_eq!(items[0]["memberType"], "direct");
    assert_eq!(items[0]["principalId"], sim.oid(FRANK));
    assert_eq!(items[0]["group"]["displayName"], "JIT Operators");
    assert_eq!(
        items[0]["group"]["description"],
        "People who may open the jump boxes through PIM"
    );

    // The policy that governs it: bob approves, with his justification; at most four hours.
    let policy = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '{OPERATORS}' and scopeType eq 'Group' and roleDefinitionId eq 'member'&$expand=policy($expand=rules)"),
            None,
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    assert_graph_shape(
        "unifiedRoleManagementPolicyAssignmentCollectionResponse",
        &policy.body,
    );
    let rules = policy.body["value"][0]["policy"]["rules"]
        .as_array()
        .expect("rules");
    let rule = |id: &str| {
        rules
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {id}"))
    };
    let approval = rule("Approval_EndUser_Assignment");
    assert_eq!(approval["setting"]["isApprovalRequired"], true);
    let stage = &approval["setting"]["approvalStages"][0];
    assert_eq!(stage["isApproverJustificationRequired"], true);
    assert_eq!(stage["approvalStageTimeOutInDays"], 1);
    assert_eq!(
        stage["primaryApprovers"][0],
        json!({"@odata.type": "#microsoft.graph.singleUser", "userId": sim.oid(BOB), "description": "Bob Brandt"})
    );
    assert_eq!(
        rule("Expiration_EndUser_Assignment")["maximumDuration"],
        "PT4H"
    );
    assert_eq!(
        rule("Enablement_EndUser_Assignment")["enabledRules"],
        json!(["Justification"])
    );

    // The request waits for bob.
    let mut body = membership(&sim, FRANK, "selfActivate", "PT2H");
    body["ticketInfo"] = json!({"ticketNumber": "INC-7", "ticketSystem": "ServiceNow"});
    let asked = post_request(&sim, &frank, body).await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.body);
    assert_graph_shape(
        "privilegedAccessGroupAssignmentScheduleRequest",
        &asked.body,
    );
    let id = asked.body["id"].as_str().expect("id").to_string();
    assert_eq!(asked.body["status"], "PendingApproval");
    assert_eq!(asked.body["approvalId"], id.as_str());
    assert_eq!(asked.body["action"], "selfActivate");
    assert_eq!(asked.body["createdBy"]["user"]["id"], sim.oid(FRANK));
    assert_eq!(asked.body["scheduleInfo"]["expiration"]["duration"], "PT2H");
    assert_eq!(asked.body["ticketInfo"]["ticketNumber"], "INC-7");
    assert_eq!(sim.events_of("graph.group_request_pending").await.len(), 1);

    // bob finds it both ways; frank finds nothing to approve.
    let bob = sim.graph_token(BOB, PIM_GROUPS).await;
    let inbox = sim
        .graph(
            Some(&bob),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/filterByCurrentUser(on='approver')"),
            None,
        )
        .await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.body);
    assert_graph_shape("approvalCollectionResponse", &inbox.body);
    let stage = &inbox.body["value"][0]["stages"][0];
    assert_eq!(inbox.body["value"][0]["id"], id.as_str());
    assert_eq!(stage["id"], id.as_str(), "the stage's id is the approval's");
    assert_eq!(stage["assignedToMe"], true);
    assert_eq!(stage["status"], "InProgress");
    assert_eq!(stage["reviewResult"], "NotReviewed");
    let pending = sim
        .graph(
            Some(&bob),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentScheduleRequests/filterByCurrentUser(on='approver')?$filter=status eq 'PendingApproval'&$expand=group"),
            None,
        )
        .await;
    assert_eq!(
        pending.body["value"][0]["id"],
        id.as_str(),
        "{}",
        pending.body
    );
    assert_eq!(pending.body["value"][0]["justification"], "INC-7 patching");
    assert_eq!(
        pending.body["value"][0]["group"]["displayName"],
        "JIT Operators"
    );
    for path in [
        format!("{PIM_GROUP_PATH}/assignmentApprovals/filterByCurrentUser(on='approver')"),
        format!("{PIM_GROUP_PATH}/assignmentScheduleRequests/filterByCurrentUser(on='approver')"),
    ] {
        let own = sim.graph(Some(&frank), Method::GET, &path, None).await;
        assert_eq!(own.body["value"], json!([]), "{path}: {}", own.body);
    }
    let mine = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentScheduleRequests/filterByCurrentUser(on='principal')?$filter=status eq 'PendingApproval' and groupId eq '{OPERATORS}'"),
            None,
        )
        .await;
    assert_eq!(mine.body["value"][0]["id"], id.as_str(), "{}", mine.body);
    let created = sim
        .all_items(
            &frank,
            &format!(
                "{PIM_GROUP_PATH}/assignmentScheduleRequests/filterByCurrentUser(on='createdBy')"
            ),
        )
        .await;
    assert_eq!(created.len(), 1);
    // The plain list, scoped to the group, as its approver reads it.
    let by_group = sim
        .graph(
            Some(&bob),
            Method::GET,
            &format!(
                "{PIM_GROUP_PATH}/assignmentScheduleRequests?$filter=groupId eq '{OPERATORS}'"
            ),
            None,
        )
        .await;
    assert_graph_shape(
        "privilegedAccessGroupAssignmentScheduleRequestCollectionResponse",
        &by_group.body,
    );
    assert_eq!(
        by_group.body["value"][0]["id"],
        id.as_str(),
        "{}",
        by_group.body
    );

    // bob approves: the stage reads his decision, and the membership runs from now.
    let decided = decide(&sim, &bob, &id, "Approve", "on call this week").await;
    assert_eq!(decided.status, StatusCode::NO_CONTENT, "{}", decided.body);
    let stage = sim
        .graph(
            Some(&bob),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}/stages/{id}"),
            None,
        )
        .await;
    assert_eq!(stage.status, StatusCode::OK, "{}", stage.body);
    assert_graph_shape("approvalStage", &stage.body);
    assert_eq!(stage.body["status"], "Completed");
    assert_eq!(stage.body["reviewResult"], "Approved");
    assert_eq!(stage.body["justification"], "on call this week");
    assert_eq!(stage.body["reviewedBy"]["id"], sim.oid(BOB));
    assert_eq!(stage.body["reviewedBy"]["userPrincipalName"], BOB);
    assert!(stage.body["reviewedDateTime"].is_string());
    let again = decide(&sim, &bob, &id, "Deny", "changed my mind").await;
    assert_error(&again, StatusCode::CONFLICT, "Conflict");

    let read = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{}/{id}", requests()),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["status"], "Provisioned");
    assert_eq!(
        read.body["targetScheduleId"],
        format!("{OPERATORS}_member_{id}")
    );
    let active = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!(
                "{PIM_GROUP_PATH}/assignmentScheduleInstances/filterByCurrentUser(on='principal')"
            ),
            None,
        )
        .await;
    assert_graph_shape(
        "privilegedAccessGroupAssignmentScheduleInstanceCollectionResponse",
        &active.body,
    );
    let instance = &active.body["value"][0];
    assert_eq!(instance["assignmentType"], "activated", "{}", active.body);
    assert_eq!(instance["memberType"], "direct");
    assert_eq!(instance["groupId"], OPERATORS);
    assert_eq!(
        instance["assignmentScheduleId"],
        format!("{OPERATORS}_member_{id}")
    );
    let time = |key: &str| {
        chrono::DateTime::parse_from_rfc3339(instance[key].as_str().expect("time"))
            .expect("RFC 3339")
    };
    assert_eq!(
        time("endDateTime") - time("startDateTime"),
        chrono::Duration::hours(2)
    );
    let kinds: Vec<Value> = sim
        .events()
        .await
        .iter()
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("graph.group_"))
        })
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "graph.group_request_pending",
            "graph.group_approval_decided",
            "graph.group_request_provisioned"
        ]
    );
}

#[tokio::test]
async fn a_request_is_checked_in_order_and_each_failure_named() {
    let sim = enterprise().await;
    let frank = sim.graph_token(FRANK, PIM_GROUPS).await;
    // Only the token's scope is checked before the body.
    let reader = sim
        .graph_token(FRANK, "PrivilegedAssignmentSchedule.Read.AzureADGroup")
        .await;
    let mut no_body_check = membership(&sim, FRANK, "selfActivate", "PT1H");
    no_body_check["foo"] = json!(1);
    let refused = post_request(&sim, &reader, no_body_check.clone()).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "UnknownError");
    // The body's shape, against the Graph excerpt.
    let shape = post_request(&sim, &frank, no_body_check).await;
    assert_error(&shape, StatusCode::BAD_REQUEST, "BadRequest");
    assert_eq!(
        shape.message(),
        "Property 'foo' does not exist as a declared property or extension property."
    );
    let invalid = sim.events_of("request.invalid").await;
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(
        invalid[0]["operation"],
        "privilegedAccessGroup_CreateAssignmentScheduleRequests"
    );
    assert_eq!(
        invalid[0]["errors"][0],
        "body.foo: property 'foo' is not declared by the spec"
    );
    let mut no_access = membership(&sim, FRANK, "selfActivate", "PT1H");
    no_access
        .as_object_mut()
        .expect("object")
        .remove("accessId");
    assert_error(
        &post_request(&sim, &frank, no_access).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    let mut guest = membership(&sim, FRANK, "selfActivate", "PT1H");
    guest["accessId"] = json!("guest");
    let guest = post_request(&sim, &frank, guest).await;
    assert_eq!(guest.message(), "Requested value 'guest' was not found.");
    let mut bad_duration = membership(&sim, FRANK, "selfActivate", "two hours");
    bad_duration["justification"] = json!("x");
    assert_error(
        &post_request(&sim, &frank, bad_duration).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    // Enum values are taken in either casing, as the docs' examples write both.
    let mut admin = membership(&sim, FRANK, "AdminAssign", "PT1H");
    admin["accessId"] = json!("Member");
    assert_error(
        &post_request(&sim, &frank, admin).await,
        StatusCode::BAD_REQUEST,
        "InvalidRoleAssignmentRequest",
    );
    // Someone else's membership.
    let for_alice = post_request(
        &sim,
        &frank,
        membership(&sim, ALICE, "selfActivate", "PT1H"),
    )
    .await;
    assert_error(&for_alice, StatusCode::FORBIDDEN, "Forbidden");
    // carol is not eligible.
    let carol = sim.graph_token(CAROL, PIM_GROUPS).await;
    let ineligible = post_request(
        &sim,
        &carol,
        membership(&sim, CAROL, "selfActivate", "PT1H"),
    )
    .await;
    assert_error(
        &ineligible,
        StatusCode::BAD_REQUEST,
        "RoleAssignmentRequestPolicyValidationFailed",
    );
    assert_eq!(
        ineligible.message(),
        "The following policy rules failed: [\"EligibilityRule\"]"
    );
    // The policy's rules, each by name.
    let mut silent = membership(&sim, FRANK, "selfActivate", "PT1H");
    silent
        .as_object_mut()
        .expect("object")
        .remove("justification");
    let silent = post_request(&sim, &frank, silent).await;
    assert_eq!(
        silent.message(),
        "The following policy rules failed: [\"JustificationRule\"]"
    );
    let long = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfActivate", "PT5H"),
    )
    .await;
    assert_eq!(
        long.message(),
        "The following policy rules failed: [\"ExpirationRule\"]"
    );
    let mut endless = membership(&sim, FRANK, "selfActivate", "PT1H");
    endless
        .as_object_mut()
        .expect("object")
        .remove("scheduleInfo");
    endless
        .as_object_mut()
        .expect("object")
        .remove("justification");
    let endless = post_request(&sim, &frank, endless).await;
    assert_eq!(
        endless.message(),
        "The following policy rules failed: [\"ExpirationRule\",\"JustificationRule\"]"
    );
    // Nothing is active to deactivate.
    let nothing = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfDeactivate", "PT1H"),
    )
    .await;
    assert_error(
        &nothing,
        StatusCode::BAD_REQUEST,
        "RoleAssignmentDoesNotExist",
    );
    assert_eq!(nothing.message(), "The Role assignment does not exist.");
    // A request pending approval stands in the way of another; its requester may cancel it.
    let first = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfActivate", "PT1H"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let id = first.body["id"].as_str().expect("id").to_string();
    let second = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfActivate", "PT1H"),
    )
    .await;
    assert_error(
        &second,
        StatusCode::BAD_REQUEST,
        "RoleAssignmentRequestExists",
    );
    let cancel = format!("{}/{id}/cancel", requests());
    let bob = sim.graph_token(BOB, PIM_GROUPS).await;
    assert_error(
        &sim.graph(Some(&bob), Method::POST, &cancel, None).await,
        StatusCode::FORBIDDEN,
        "Forbidden",
    );
    let canceled = sim.graph(Some(&frank), Method::POST, &cancel, None).await;
    assert_eq!(canceled.status, StatusCode::NO_CONTENT, "{}", canceled.body);
    let read = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{}/{id}", requests()),
            None,
        )
        .await;
    assert_eq!(read.body["status"], "Canceled");
    assert_error(
        &sim.graph(Some(&frank), Method::POST, &cancel, None).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert_eq!(sim.events_of("graph.group_request_canceled").await.len(), 1);
    // bob has nothing left to decide.
    let inbox = sim
        .graph(
            Some(&bob),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/filterByCurrentUser(on='approver')"),
            None,
        )
        .await;
    assert_eq!(inbox.body["value"], json!([]));
    // Unknown ids, and an `on` the function does not take.
    let unknown = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{}/6aacaee8-4089-4048-9510-3119367fc943", requests()),
            None,
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "ResourceNotFound");
    let wrong_on = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!(
                "{PIM_GROUP_PATH}/eligibilityScheduleInstances/filterByCurrentUser(on='approver')"
            ),
            None,
        )
        .await;
    assert_error(&wrong_on, StatusCode::BAD_REQUEST, "BadRequest");
    // A validation-only request is checked and answered, and nothing is kept.
    let mut check = membership(&sim, FRANK, "selfActivate", "PT1H");
    check["isValidationOnly"] = json!(true);
    let checked = post_request(&sim, &frank, check).await;
    assert_eq!(checked.status, StatusCode::CREATED, "{}", checked.body);
    assert_eq!(checked.body["isValidationOnly"], true);
    assert_eq!(checked.body["status"], "PendingApproval");
    let mine = sim
        .all_items(
            &frank,
            &format!(
                "{PIM_GROUP_PATH}/assignmentScheduleRequests/filterByCurrentUser(on='principal')"
            ),
        )
        .await;
    assert_eq!(mine.len(), 1, "only the canceled request: {mine:?}");
}

#[tokio::test]
async fn approvals_refuse_self_approval_outsiders_and_second_decisions_and_time_out() {
    // bob may also join the group: he may not approve his own request.
    let sim = enterprise_with(&[(
        "eligible_members = [\"frank@contoso.example\", \"alice@contoso.example\"]",
        "eligible_members = [\"frank@contoso.example\", \"alice@contoso.example\", \"bob@contoso.example\"]",
    )])
    .await;
    let bob = sim.graph_token(BOB, PIM_GROUPS).await;
    let own = post_request(&sim, &bob, membership(&sim, BOB, "selfActivate", "PT1H")).await;
    assert_eq!(own.body["status"], "PendingApproval", "{}", own.body);
    let own_id = own.body["id"].as_str().expect("id").to_string();
    let self_approval = decide(&sim, &bob, &own_id, "Approve", "me").await;
    assert_error(&self_approval, StatusCode::FORBIDDEN, "Forbidden");
    assert_eq!(
        self_approval.message(),
        "Request doesn't allow Self-Approval"
    );
    let stage = sim
        .graph(
            Some(&bob),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{own_id}"),
            None,
        )
        .await;
    assert_eq!(stage.status, StatusCode::OK, "{}", stage.body);
    assert_graph_shape("approval", &stage.body);
    assert_eq!(stage.body["stages"][0]["assignedToMe"], false);

    // frank's request: carol is no approver, dave may not read it, ids must exist.
    let frank = sim.graph_token(FRANK, PIM_GROUPS).await;
    let asked = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfActivate", "PT1H"),
    )
    .await;
    let id = asked.body["id"].as_str().expect("id").to_string();
    let carol = sim.graph_token(CAROL, PIM_GROUPS).await;
    assert_error(
        &decide(&sim, &carol, &id, "Approve", "sure").await,
        StatusCode::FORBIDDEN,
        "Forbidden",
    );
    let dave = sim.graph_token(DAVE, PIM_GROUPS).await;
    assert_error(
        &sim.graph(
            Some(&dave),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}"),
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "Forbidden",
    );
    let unknown = "0f0f0f0f-0000-4000-8000-000000000000";
    assert_error(
        &decide(&sim, &bob, unknown, "Approve", "ok").await,
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    );
    let wrong_stage = sim
        .graph(
            Some(&bob),
            Method::PATCH,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}/stages/{unknown}"),
            Some(json!({"reviewResult": "Approve", "justification": "ok"})),
        )
        .await;
    assert_error(&wrong_stage, StatusCode::NOT_FOUND, "ResourceNotFound");
    // The decision's body is checked too; bob owes a justification.
    let undeclared = sim
        .graph(
            Some(&bob),
            Method::PATCH,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}/stages/{id}"),
            Some(json!({"reviewResult": "Approve", "justification": "ok", "status": "Completed"})),
        )
        .await;
    assert_error(&undeclared, StatusCode::BAD_REQUEST, "BadRequest");
    assert_error(
        &decide(&sim, &bob, &id, "Approved", "ok").await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    assert_error(
        &decide(&sim, &bob, &id, "Approve", " ").await,
        StatusCode::BAD_REQUEST,
        "JustificationRequired",
    );
    let stages = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}/stages"),
            None,
        )
        .await;
    assert_graph_shape("approvalStageCollectionResponse", &stages.body);
    assert_eq!(stages.body["value"][0]["status"], "InProgress");
    // bob denies; the request reads Denied and the stage cannot be decided again.
    let denied = decide(&sim, &bob, &id, "Deny", "not this week").await;
    assert_eq!(denied.status, StatusCode::NO_CONTENT, "{}", denied.body);
    let read = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{}/{id}", requests()),
            None,
        )
        .await;
    assert_eq!(read.body["status"], "Denied");
    assert_error(
        &decide(&sim, &bob, &id, "Approve", "ok").await,
        StatusCode::CONFLICT,
        "Conflict",
    );
    let stage = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{id}/stages/{id}"),
            None,
        )
        .await;
    assert_eq!(stage.body["reviewResult"], "Denied");

    // A stage nobody decides expires after a day, on the simulator's clock.
    let waiting = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfActivate", "PT1H"),
    )
    .await;
    let waiting = waiting.body["id"].as_str().expect("id").to_string();
    sim.advance(86_401).await;
    // Tokens last an hour: take fresh ones.
    let frank = sim.graph_token(FRANK, PIM_GROUPS).await;
    let bob = sim.graph_token(BOB, PIM_GROUPS).await;
    let read = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{}/{waiting}", requests()),
            None,
        )
        .await;
    assert_eq!(read.body["status"], "TimedOut");
    let stage = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/{waiting}/stages/{waiting}"),
            None,
        )
        .await;
    assert_eq!(stage.body["status"], "Expired");
    assert_error(
        &decide(&sim, &bob, &waiting, "Approve", "late").await,
        StatusCode::CONFLICT,
        "Conflict",
    );
    assert_eq!(
        sim.events_of("graph.group_request_timed_out").await.len(),
        2,
        "bob's own and frank's"
    );
}

#[tokio::test]
async fn group_policies_carry_the_fixtures_settings_or_microsofts_defaults() {
    let sim = enterprise().await;
    let frank = sim.graph_token(FRANK, PIM_GROUPS).await;
    let policies = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("/v1.0/policies/roleManagementPolicies?$filter=scopeId eq '{OPERATORS}' and scopeType eq 'Group'&$expand=rules"),
            None,
        )
        .await;
    assert_eq!(policies.status, StatusCode::OK, "{}", policies.body);
    assert_graph_shape(
        "unifiedRoleManagementPolicyCollectionResponse",
        &policies.body,
    );
    let list = policies.body["value"].as_array().expect("value");
    assert_eq!(list.len(), 2, "member and owner");
    for p in list {
        assert!(
            p["id"]
                .as_str()
                .is_some_and(|id| id.starts_with(&format!("Group_{OPERATORS}_"))),
            "{p}"
        );
        let ids: std::collections::BTreeSet<&str> = p["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(ids.len(), 17, "{ids:?}");
    }
    // The assignments name each policy and the relationship; the owner one has the defaults.
    let assignments = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '{OPERATORS}' and scopeType eq 'Group'&$expand=policy($expand=rules)"),
            None,
        )
        .await;
    let items = assignments.body["value"].as_array().expect("value");
    let owner = items
        .iter()
        .find(|a| a["roleDefinitionId"] == "owner")
        .expect("owner");
    assert_eq!(
        owner["id"],
        format!("{}_owner", owner["policyId"].as_str().expect("policy id"))
    );
    let rule = |id: &str| {
        owner["policy"]["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect("rule")
    };
    assert_eq!(
        rule("Approval_EndUser_Assignment")["setting"]["isApprovalRequired"],
        false
    );
    assert_eq!(
        rule("Approval_EndUser_Assignment")["setting"]["approvalMode"],
        "NoApproval"
    );
    assert_eq!(
        rule("Expiration_EndUser_Assignment")["maximumDuration"],
        "PT8H"
    );
    assert_eq!(
        rule("Enablement_EndUser_Assignment")["enabledRules"],
        json!(["Justification"])
    );
    // Without $expand, no policy.
    let bare = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '{OPERATORS}' and scopeType eq 'Group' and roleDefinitionId eq 'owner'"),
            None,
        )
        .await;
    assert_eq!(bare.body["value"].as_array().map(Vec::len), Some(1));
    assert!(bare.body["value"][0].get("policy").is_none());
    // The filter is required, for groups only; the permission too.
    for path in [
        "/v1.0/policies/roleManagementPolicyAssignments".to_string(),
        format!("/v1.0/policies/roleManagementPolicies?$filter=scopeId eq '{OPERATORS}'"),
        "/v1.0/policies/roleManagementPolicies?$filter=scopeId eq '/' and scopeType eq 'Directory'"
            .to_string(),
    ] {
        let refused = sim.graph(Some(&frank), Method::GET, &path, None).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            refused.body
        );
    }
    let without = sim
        .graph_token(FRANK, "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup")
        .await;
    let refused = sim
        .graph(
            Some(&without),
            Method::GET,
            &format!("/v1.0/policies/roleManagementPolicies?$filter=scopeId eq '{OPERATORS}' and scopeType eq 'Group'"),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "UnknownError");
    assert!(
        refused.message().contains("missing permission scope RoleManagementPolicy.Read.AzureADGroup,RoleManagementPolicy.ReadWrite.AzureADGroup."),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn permissions_follow_graphs_names_and_its_403_body() {
    let sim = enterprise().await;
    let user_only = sim.graph_token(FRANK, "User.Read").await;
    let refused = sim
        .graph(
            Some(&user_only),
            Method::GET,
            &format!(
                "{PIM_GROUP_PATH}/eligibilityScheduleInstances/filterByCurrentUser(on='principal')"
            ),
            None,
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "UnknownError");
    let inner: Value = serde_json::from_str(refused.message()).expect("the message is JSON");
    assert_eq!(
        inner,
        json!({
            "errorCode": "PermissionScopeNotGranted",
            "message": "Authorization failed due to missing permission scope PrivilegedEligibilitySchedule.Read.AzureADGroup,PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup,PrivilegedAccess.Read.AzureADGroup,PrivilegedAccess.ReadWrite.AzureADGroup.",
            "instanceAnnotations": [],
        })
    );
    // The legacy PrivilegedAccess permissions still read.
    let legacy = sim
        .graph_token(FRANK, "PrivilegedAccess.Read.AzureADGroup")
        .await;
    for collection in [
        "eligibilityScheduleInstances",
        "assignmentScheduleInstances",
        "assignmentScheduleRequests",
    ] {
        let read = sim
            .graph(
                Some(&legacy),
                Method::GET,
                &format!("{PIM_GROUP_PATH}/{collection}/filterByCurrentUser(on='principal')"),
                None,
            )
            .await;
        assert_eq!(read.status, StatusCode::OK, "{collection}: {}", read.body);
    }
    // Reading assignments does not let one write them.
    let reader = sim
        .graph_token(FRANK, "PrivilegedAssignmentSchedule.Read.AzureADGroup")
        .await;
    let write = post_request(
        &sim,
        &reader,
        membership(&sim, FRANK, "selfActivate", "PT1H"),
    )
    .await;
    let inner: Value = serde_json::from_str(write.message()).expect("JSON");
    assert_eq!(
        inner["message"],
        "Authorization failed due to missing permission scope PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup,PrivilegedAccess.ReadWrite.AzureADGroup."
    );
    let eligibility_only = sim
        .graph_token(FRANK, "PrivilegedEligibilitySchedule.Read.AzureADGroup")
        .await;
    let approvals = sim
        .graph(
            Some(&eligibility_only),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/assignmentApprovals/filterByCurrentUser(on='approver')"),
            None,
        )
        .await;
    assert_error(&approvals, StatusCode::FORBIDDEN, "UnknownError");
    assert_eq!(sim.events_of("graph.scope_not_granted").await.len(), 3);
    // No token at all: 401 before anything else.
    let anonymous = sim
        .graph(
            None,
            Method::GET,
            &format!("{PIM_GROUP_PATH}/nothing"),
            None,
        )
        .await;
    assert_error(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );
}

#[tokio::test]
async fn a_group_is_read_with_a_group_permission() {
    let sim = enterprise().await;
    let path = format!("/v1.0/groups/{OPERATORS}");
    let token = sim.graph_token(FRANK, "GroupMember.Read.All").await;
    let group = sim.graph(Some(&token), Method::GET, &path, None).await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    assert_graph_shape("group", &group.body);
    assert_eq!(group.body["displayName"], "JIT Operators");
    assert_eq!(group.body["securityEnabled"], true);
    assert_eq!(group.body["mailEnabled"], false);
    assert_eq!(group.body["isAssignableToRole"], false);
    assert!(group.body["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("/v1.0/$metadata#groups/$entity")));
    let pim_only = sim.graph_token(FRANK, PIM_GROUPS).await;
    assert_error(
        &sim.graph(Some(&pim_only), Method::GET, &path, None).await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    assert_error(
        &sim.graph(
            Some(&token),
            Method::GET,
            "/v1.0/groups/0f0f0f0f-0000-4000-8000-000000000000",
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
}

#[tokio::test]
async fn plain_lists_need_a_filter_and_show_what_the_caller_may_read() {
    let sim = enterprise().await;
    let frank = sim.graph_token(FRANK, PIM_GROUPS).await;
    for collection in [
        "eligibilityScheduleInstances",
        "assignmentScheduleInstances",
        "assignmentScheduleRequests",
    ] {
        let bare = sim
            .graph(
                Some(&frank),
                Method::GET,
                &format!("{PIM_GROUP_PATH}/{collection}"),
                None,
            )
            .await;
        assert_error(&bare, StatusCode::BAD_REQUEST, "BadRequest");
    }
    // frank may read the group's eligibilities (his and alice's), one to a page with $top.
    let path = format!(
        "{PIM_GROUP_PATH}/eligibilityScheduleInstances?$filter=groupId eq '{OPERATORS}'&$top=1"
    );
    let first = sim.graph(Some(&frank), Method::GET, &path, None).await;
    assert_eq!(
        first.body["value"].as_array().map(Vec::len),
        Some(1),
        "{}",
        first.body
    );
    assert!(first.body["@odata.nextLink"].is_string(), "{}", first.body);
    let all = sim.all_items(&frank, &path).await;
    let principals: std::collections::BTreeSet<&str> = all
        .iter()
        .filter_map(|e| e["principalId"].as_str())
        .collect();
    assert_eq!(
        principals,
        [sim.oid(ALICE), sim.oid(FRANK)].into_iter().collect(),
        "{all:?}"
    );
    let by_principal = sim
        .all_items(
            &frank,
            &format!("{PIM_GROUP_PATH}/eligibilityScheduleInstances?$filter=principalId eq '{}' and accessId eq 'member'", sim.oid(ALICE)),
        )
        .await;
    assert_eq!(by_principal.len(), 1);
    // carol has nothing to do with the group and reads nothing of it.
    let carol = sim.graph_token(CAROL, PIM_GROUPS).await;
    assert!(sim
        .all_items(
            &carol,
            &format!(
                "{PIM_GROUP_PATH}/eligibilityScheduleInstances?$filter=groupId eq '{OPERATORS}'"
            )
        )
        .await
        .is_empty());
    // An unserved clause is refused.
    let odd = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!(
                "{PIM_GROUP_PATH}/eligibilityScheduleInstances?$filter=startswith(groupId,'9a')"
            ),
            None,
        )
        .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{}", odd.body);
    let expand = sim
        .graph(
            Some(&frank),
            Method::GET,
            &format!("{PIM_GROUP_PATH}/eligibilityScheduleInstances/filterByCurrentUser(on='principal')?$expand=principal"),
            None,
        )
        .await;
    assert_error(&expand, StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn a_membership_follows_pims_timing_rules() {
    // enterprise: no deactivation in the first 5 minutes; a deactivated membership lingers 8 s.
    let sim = enterprise().await;
    let id = join_approved(&sim, FRANK, "PT2H").await;
    let frank = sim.graph_token(FRANK, PIM_GROUPS).await;
    let too_soon = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfDeactivate", "PT1H"),
    )
    .await;
    assert_error(&too_soon, StatusCode::BAD_REQUEST, "ActiveDurationTooShort");
    assert_eq!(
        too_soon.message(),
        "The Active duration is too short. Miniumum Required is 5 minutes."
    );
    sim.advance(301).await;
    let mut deactivate = membership(&sim, FRANK, "selfDeactivate", "PT1H");
    deactivate
        .as_object_mut()
        .expect("object")
        .remove("scheduleInfo");
    let ended = post_request(&sim, &frank, deactivate).await;
    assert_eq!(ended.status, StatusCode::CREATED, "{}", ended.body);
    assert_eq!(ended.body["status"], "Revoked");
    assert_eq!(ended.body["action"], "selfDeactivate");
    // For 8 s it lingers: listed, in new tokens, and in the way of a new activation.
    let instances =
        format!("{PIM_GROUP_PATH}/assignmentScheduleInstances/filterByCurrentUser(on='principal')");
    let listed = sim.all_items(&frank, &instances).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0]["assignmentScheduleId"],
        format!("{OPERATORS}_member_{id}")
    );
    let token = sim.token(FRANK).await;
    assert_eq!(claims(&token)["groups"], json!([OPERATORS]));
    let again = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfActivate", "PT1H"),
    )
    .await;
    assert_error(&again, StatusCode::BAD_REQUEST, "RoleAssignmentExists");
    assert_eq!(again.message(), "The Role assignment already exists.");
    let twice = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfDeactivate", "PT1H"),
    )
    .await;
    assert_error(
        &twice,
        StatusCode::BAD_REQUEST,
        "RoleAssignmentDoesNotExist",
    );
    // Then it is gone.
    sim.advance(9).await;
    assert!(sim.all_items(&frank, &instances).await.is_empty());
    assert!(claims(&sim.token(FRANK).await).get("groups").is_none());
    assert_eq!(sim.events_of("graph.group_membership_ended").await.len(), 1);
    let anew = post_request(
        &sim,
        &frank,
        membership(&sim, FRANK, "selfActivate", "PT1H"),
    )
    .await;
    assert_eq!(anew.status, StatusCode::CREATED, "{}", anew.body);
    assert_eq!(anew.body["status"], "PendingApproval");
}

#[tokio::test]
async fn a_membership_ends_at_its_expiration() {
    let sim = enterprise().await;
    join_approved(&sim, ALICE, "PT1H").await;
    let alice = sim.graph_token(ALICE, PIM_GROUPS).await;
    let instances =
        format!("{PIM_GROUP_PATH}/assignmentScheduleInstances?$filter=groupId eq '{OPERATORS}'");
    assert_eq!(sim.all_items(&alice, &instances).await.len(), 1);
    sim.advance(3601).await;
    let alice = sim.graph_token(ALICE, PIM_GROUPS).await;
    assert!(sim.all_items(&alice, &instances).await.is_empty());
    assert_eq!(
        sim.events_of("graph.group_membership_ended").await[0]["deactivated"],
        false
    );
}

#[tokio::test]
async fn the_first_initiate_after_a_group_grant_takes_effect_is_refused_once() {
    // enterprise: within 60 s of a membership's provisioning, ARM's cache refuses the first
    // initiate that only the membership permits.
    let sim = enterprise().await;
    join_approved(&sim, FRANK, "PT1H").await;
    let token = sim.token(FRANK).await;
    let policy = format!("/subscriptions/{JUMP_SUB}/resourceGroups/rg-jumpboxes/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default");
    let initiate = || async {
        let end = sim.now().await + chrono::Duration::minutes(30);
        sim.arm_as(
            Some(&token),
            Method::POST,
            &format!("{policy}/initiate?api-version={JIT}"),
            Some(json!({"virtualMachines": [{
                "id": format!("/subscriptions/{JUMP_SUB}/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-linux-01"),
                "ports": [{"number": 22, "endTimeUtc": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}]}]})),
        )
        .await
    };
    let first = initiate().await;
    assert_eq!(
        (first.status, first.code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed"),
        "{}",
        first.body
    );
    assert!(first
        .message()
        .ends_with("If access was recently granted, please refresh your credentials."));
    let refused = sim.events_of("jit.initiate_refused_cache").await;
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]["activations"][0]["groupMembership"].is_string(),
        "{refused:?}"
    );
    let second = initiate().await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
}
