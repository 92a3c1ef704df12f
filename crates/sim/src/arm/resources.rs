//! Plain ARM reads and role definitions: subscriptions, VMs, NICs, public IPs, role
//! definitions and the caller's effective permissions.

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use super::{created, is_guid, ok, page, ArmResult, Call};
use crate::error::ArmError;
use crate::rbac::normalize_scope;
use crate::state::{RoleDefinition, Vm, World};
use crate::tenant::OsType;

fn subscription_json(world: &World, s: &crate::state::Subscription) -> Value {
    json!({
        "id": format!("/subscriptions/{}", s.id),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.id,
        "tenantId": world.tenant.id,
        "displayName": s.display_name,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
        "tags": {},
    })
}

/// Subscriptions in which the caller (or one of the caller's groups) holds any role: at the
/// subscription, above it (a management group, the root) or below it.
fn visible(world: &World, caller: &super::Caller, sub: &str) -> bool {
    let scope = format!("/subscriptions/{sub}");
    world
        .role_assignments
        .iter()
        .any(|ra| caller.is(&ra.principal) && world.in_scope(&scope, &ra.scope))
}

pub fn list_subscriptions(call: &Call) -> ArmResult {
    let world = call.sim.world();
    let items = world
        .subscriptions
        .iter()
        .filter(|s| visible(&world, &call.caller, &s.id))
        .map(|s| subscription_json(&world, s))
        .collect();
    page(call, &world, "subscriptions", items)
}

pub fn get_subscription(call: &Call, sub: &str) -> ArmResult {
    let world = call.sim.world();
    world
        .subscriptions
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(sub) && visible(&world, &call.caller, &s.id))
        .map(|s| ok(subscription_json(&world, s)))
        .ok_or_else(|| {
            ArmError::not_found(
                "SubscriptionNotFound",
                format!("The subscription '{sub}' could not be found."),
            )
        })
}

fn vm_json(vm: &Vm) -> Value {
    let rg = vm.rg_id();
    let (image, os_profile) = match vm.os {
        OsType::Windows => (
            json!({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-azure-edition", "version": "latest"}),
            json!({"computerName": vm.name, "adminUsername": "azureadmin", "windowsConfiguration": {"provisionVMAgent": true, "enableAutomaticUpdates": true}, "secrets": []}),
        ),
        OsType::Linux => (
            json!({"publisher": "Debian", "offer": "debian-12", "sku": "12-gen2", "version": "latest"}),
            json!({"computerName": vm.name, "adminUsername": "azureadmin", "linuxConfiguration": {"disablePasswordAuthentication": true, "provisionVMAgent": true}, "secrets": []}),
        ),
    };
    let os = match vm.os {
        OsType::Windows => "Windows",
        OsType::Linux => "Linux",
    };
    json!({
        "name": vm.name,
        "id": vm.id(),
        "type": "Microsoft.Compute/virtualMachines",
        "location": vm.location,
        "tags": {},
        "properties": {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": {
                "imageReference": image,
                "osDisk": {
                    "osType": os,
                    "name": format!("{}-osdisk", vm.name),
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "managedDisk": {"storageAccountType": "Premium_LRS", "id": format!("{rg}/providers/Microsoft.Compute/disks/{}-osdisk", vm.name)},
                    "diskSizeGB": 128
                },
                "dataDisks": []
            },
            "osProfile": os_profile,
            "securityProfile": {"securityType": "TrustedLaunch"},
            "networkProfile": {"networkInterfaces": [{"id": format!("{rg}/providers/Microsoft.Network/networkInterfaces/{}", vm.nic_name())}]},
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": true}},
            "provisioningState": "Succeeded",
            "timeCreated": "2026-01-05T09:00:00.0000000+00:00",
        }
    })
}

pub fn virtual_machines(call: &Call, sub: &str, rg: Option<&str>, name: Option<&str>) -> ArmResult {
    const ACTION: &str = "Microsoft.Compute/virtualMachines/read";
    let now = call.sim.clock.now();
    let world = call.sim.world();
    let in_place = |vm: &&Vm| {
        vm.subscription.eq_ignore_ascii_case(sub)
            && rg.is_none_or(|rg| vm.resource_group.eq_ignore_ascii_case(rg))
    };
    match name {
        Some(name) => {
            let vm = world
                .vms
                .iter()
                .filter(in_place)
                .find(|vm| vm.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| ArmError::not_found("ResourceNotFound", format!("The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{}' was not found.", rg.unwrap_or(""))))?;
            call.require(&world, ACTION, &vm.id())?;
            Ok(ok(vm_json(vm)))
        }
        None => {
            let items: Vec<Value> = world
                .vms
                .iter()
                .filter(in_place)
                .filter(|vm| world.is_permitted_any(&call.caller.principals, ACTION, &vm.id(), now))
                .map(vm_json)
                .collect();
            let scope = match rg {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
                None => format!("/subscriptions/{sub}"),
            };
            require_some_access(call, &world, &items, ACTION, &scope)?;
            page(call, &world, "virtualMachines", items)
        }
    }
}

fn nic_json(vm: &Vm) -> Value {
    let rg = vm.rg_id();
    let nic = format!(
        "{rg}/providers/Microsoft.Network/networkInterfaces/{}",
        vm.nic_name()
    );
    json!({
        "name": vm.nic_name(),
        "id": nic,
        "location": vm.location,
        "type": "Microsoft.Network/networkInterfaces",
        "properties": {
            "provisioningState": "Succeeded",
            "ipConfigurations": [{
                "name": "ipconfig1",
                "id": format!("{nic}/ipConfigurations/ipconfig1"),
                "properties": {
                    "provisioningState": "Succeeded",
                    "privateIPAddress": vm.private_ip.to_string(),
                    "privateIPAllocationMethod": "Dynamic",
                    "publicIPAddress": {"id": format!("{rg}/providers/Microsoft.Network/publicIPAddresses/{}", vm.pip_name())},
                    "subnet": {"id": format!("{rg}/providers/Microsoft.Network/virtualNetworks/{}-vnet/subnets/default", vm.resource_group)},
                    "primary": true,
                    "privateIPAddressVersion": "IPv4"
                }
            }],
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
            "macAddress": "00-0D-3A-00-00-01",
            "enableAcceleratedNetworking": false,
            "enableIPForwarding": false,
            "networkSecurityGroup": {"id": format!("{rg}/providers/Microsoft.Network/networkSecurityGroups/{}-nsg", vm.name)},
            "primary": true,
            "virtualMachine": {"id": vm.id()},
        }
    })
}

fn pip_json(vm: &Vm) -> Value {
    let rg = vm.rg_id();
    json!({
        "name": vm.pip_name(),
        "id": format!("{rg}/providers/Microsoft.Network/publicIPAddresses/{}", vm.pip_name()),
        "location": vm.location,
        "type": "Microsoft.Network/publicIPAddresses",
        "properties": {
            "provisioningState": "Succeeded",
            "ipAddress": vm.public_ip.to_string(),
            "publicIPAddressVersion": "IPv4",
            "publicIPAllocationMethod": "Static",
            "idleTimeoutInMinutes": 4,
            "ipConfiguration": {"id": format!("{rg}/providers/Microsoft.Network/networkInterfaces/{}/ipConfigurations/ipconfig1", vm.nic_name())},
            "ipTags": []
        }
    })
}

pub fn network(call: &Call, sub: &str, rg: &str, kind: &str, name: Option<&str>) -> ArmResult {
    type Render = fn(&Vm) -> Value;
    type Name = fn(&Vm) -> String;
    let (action, render, suffix): (&str, Render, Name) = if kind == "networkinterfaces" {
        (
            "Microsoft.Network/networkInterfaces/read",
            nic_json,
            Vm::nic_name,
        )
    } else {
        (
            "Microsoft.Network/publicIPAddresses/read",
            pip_json,
            Vm::pip_name,
        )
    };
    let now = call.sim.clock.now();
    let world = call.sim.world();
    let in_rg = |vm: &&Vm| {
        vm.subscription.eq_ignore_ascii_case(sub) && vm.resource_group.eq_ignore_ascii_case(rg)
    };
    let id_of = |vm: &Vm| render(vm)["id"].as_str().unwrap_or_default().to_string();
    match name {
        Some(name) => {
            let vm = world
                .vms
                .iter()
                .filter(in_rg)
                .find(|vm| suffix(vm).eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    ArmError::not_found(
                        "ResourceNotFound",
                        format!("The Resource '{name}' under resource group '{rg}' was not found."),
                    )
                })?;
            call.require(&world, action, &id_of(vm))?;
            Ok(ok(render(vm)))
        }
        None => {
            let items: Vec<Value> = world
                .vms
                .iter()
                .filter(in_rg)
                .filter(|vm| {
                    world.is_permitted_any(&call.caller.principals, action, &id_of(vm), now)
                })
                .map(render)
                .collect();
            let scope = format!("/subscriptions/{sub}/resourceGroups/{rg}");
            require_some_access(call, &world, &items, action, &scope)?;
            let kind = if kind == "networkinterfaces" {
                "networkInterfaces"
            } else {
                "publicIPAddresses"
            };
            page(call, &world, kind, items)
        }
    }
}

/// A list the caller can see nothing of is refused, as ARM refuses a list at a scope the
/// caller has no access to; one who holds a role somewhere under the scope gets what they
/// may read (possibly nothing) *(assumption)*.
fn require_some_access(
    call: &Call,
    world: &World,
    readable: &[Value],
    action: &str,
    scope: &str,
) -> Result<(), ArmError> {
    if !readable.is_empty() {
        return Ok(());
    }
    let below = world
        .role_assignments
        .iter()
        .any(|ra| call.caller.is(&ra.principal) && world.scope_contains(scope, &ra.scope));
    if below {
        Ok(())
    } else {
        call.require(world, action, scope)
    }
}

fn role_definition_json(world: &World, scope: &str, rd: &RoleDefinition) -> Value {
    json!({
        "id": world.role_definition_id(scope, &rd.guid),
        "name": rd.guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": rd.name,
            "type": rd.role_type,
            "description": rd.description,
            "assignableScopes": rd.assignable_scopes,
            "permissions": [{
                "actions": rd.actions,
                "notActions": rd.not_actions,
                "dataActions": rd.data_actions,
                "notDataActions": rd.not_data_actions,
            }],
        }
    })
}

/// Whether a role definition can be seen from `scope`: built-ins everywhere, custom roles
/// where one of their assignable scopes overlaps.
fn role_visible(world: &World, rd: &RoleDefinition, scope: &str) -> bool {
    rd.assignable_scopes
        .iter()
        .any(|s| world.in_scope(scope, s))
}

pub fn role_definitions(
    call: &Call,
    scope: &str,
    name: Option<&str>,
    not_allowed: impl Fn() -> ArmError,
) -> ArmResult {
    match (name, &call.method) {
        (None, &Method::GET) => {
            // Any signed-in user of the tenant may read role definitions (see the README).
            let world = call.sim.world();
            let filter = call.filter().map(str::to_string);
            let wanted = |rd: &RoleDefinition| match filter.as_deref() {
                None => true,
                Some(f) => {
                    let lower = f.to_ascii_lowercase();
                    let quoted = f.split('\'').nth(1).unwrap_or("");
                    if lower.starts_with("rolename eq") {
                        rd.name.eq_ignore_ascii_case(quoted)
                    } else if lower.starts_with("type eq") {
                        rd.role_type.eq_ignore_ascii_case(quoted)
                    } else {
                        false
                    }
                }
            };
            if let Some(f) = &filter {
                let lower = f.to_ascii_lowercase();
                if !(lower.starts_with("rolename eq") || lower.starts_with("type eq")) {
                    return Err(ArmError::bad_request("BadRequest", format!("The filter '{f}' is not supported. Use roleName eq '...' or type eq '...'.")));
                }
            }
            let items = world
                .role_definitions
                .iter()
                .filter(|rd| role_visible(&world, rd, scope) && wanted(rd))
                .map(|rd| role_definition_json(&world, scope, rd))
                .collect();
            page(call, &world, "roleDefinitions", items)
        }
        (Some(id), &Method::GET) => {
            let world = call.sim.world();
            let rd = world
                .role(id)
                .filter(|rd| role_visible(&world, rd, scope))
                .ok_or_else(|| {
                    ArmError::not_found(
                        "RoleDefinitionDoesNotExist",
                        format!("The specified role definition with ID '{id}' does not exist."),
                    )
                })?;
            Ok(ok(role_definition_json(&world, scope, rd)))
        }
        (Some(id), &Method::PUT) => put_role_definition(call, scope, id),
        (Some(id), &Method::DELETE) => {
            let now = call.sim.clock.now();
            let mut world = call.sim.world();
            call.require(
                &world,
                "Microsoft.Authorization/roleDefinitions/delete",
                scope,
            )?;
            let Some(rd) = world.role(id).cloned() else {
                return Ok(StatusCode::NO_CONTENT.into_response());
            };
            if rd.role_type != "CustomRole" {
                return Err(ArmError::bad_request(
                    "CannotModifyBuiltInRole",
                    "Built-in roles cannot be deleted.",
                ));
            }
            if world.role_assignments.iter().any(|ra| ra.role == rd.guid)
                || world.eligibilities.iter().any(|e| e.role == rd.guid)
            {
                return Err(ArmError::bad_request(
                    "RoleDefinitionHasAssignments",
                    "There are existing role assignments referencing this role. Remove them first.",
                ));
            }
            world.role_definitions.retain(|r| r.guid != rd.guid);
            world.record(
                now,
                "authorization.role_definition_deleted",
                json!({"role": rd.name, "by": call.caller.upn}),
            );
            Ok(ok(role_definition_json(&world, scope, &rd)))
        }
        _ => Err(not_allowed()),
    }
}

fn string_list(value: &Value, what: &str) -> Result<Vec<String>, ArmError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ArmError::invalid_content(format!("{what} must hold strings")))
            })
            .collect(),
        _ => Err(ArmError::invalid_content(format!(
            "{what} must be an array"
        ))),
    }
}

fn put_role_definition(call: &Call, scope: &str, id: &str) -> ArmResult {
    if !is_guid(id) {
        return Err(ArmError::bad_request(
            "InvalidRoleDefinitionId",
            format!("The role definition ID '{id}' is not valid: it must be a GUID."),
        ));
    }
    let body = call.json()?;
    let p = body
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or_else(|| ArmError::invalid_content("'properties' is required"))?;
    let name = p
        .get("roleName")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            ArmError::bad_request(
                "RoleDefinitionNameNullOrEmpty",
                "The role definition name cannot be null or empty.",
            )
        })?
        .to_string();
    let permissions = p
        .get("permissions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut actions = Vec::new();
    let mut not_actions = Vec::new();
    let mut data_actions = Vec::new();
    let mut not_data_actions = Vec::new();
    for perm in &permissions {
        actions.extend(string_list(&perm["actions"], "actions")?);
        not_actions.extend(string_list(&perm["notActions"], "notActions")?);
        data_actions.extend(string_list(&perm["dataActions"], "dataActions")?);
        not_data_actions.extend(string_list(&perm["notDataActions"], "notDataActions")?);
    }
    let assignable: Vec<String> = string_list(&p["assignableScopes"], "assignableScopes")?
        .iter()
        .map(|s| normalize_scope(s))
        .collect();
    if assignable.is_empty() {
        return Err(ArmError::bad_request(
            "InvalidAssignableScopes",
            "At least one assignable scope is required.",
        ));
    }
    let now = call.sim.clock.now();
    let mut world = call.sim.world();
    for s in &assignable {
        call.require(&world, "Microsoft.Authorization/roleDefinitions/write", s)?;
    }
    if world
        .role_definitions
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(&name) && !r.guid.eq_ignore_ascii_case(id))
    {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "RoleDefinitionWithSameNameExists",
            format!("A custom role with the same name '{name}' already exists in this directory. Use a different name."),
        ));
    }
    let description = p
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let existing = world
        .role_definitions
        .iter()
        .position(|r| r.guid.eq_ignore_ascii_case(id));
    if let Some(i) = existing {
        if world.role_definitions[i].role_type != "CustomRole" {
            return Err(ArmError::bad_request(
                "CannotModifyBuiltInRole",
                "Built-in roles cannot be changed.",
            ));
        }
    }
    let rd = RoleDefinition {
        guid: id.to_ascii_lowercase(),
        name,
        description,
        role_type: "CustomRole".into(),
        assignable_scopes: assignable,
        actions,
        not_actions,
        data_actions,
        not_data_actions,
        created_on: existing
            .map(|i| world.role_definitions[i].created_on)
            .unwrap_or(now),
    };
    world.record(
        now,
        "authorization.role_definition_written",
        json!({"role": rd.name, "by": call.caller.upn}),
    );
    let body = role_definition_json(&world, scope, &rd);
    match existing {
        Some(i) => {
            world.role_definitions[i] = rd;
            Ok(ok(body))
        }
        None => {
            world.role_definitions.push(rd);
            Ok(created(body))
        }
    }
}

/// One clause of a role assignment list's `$filter`.
enum AssignmentFilter {
    /// At the scope or above it.
    AtScope,
    /// The principal's own assignments.
    Principal(String),
    /// The principal's own and those of the groups it is a member of.
    AssignedTo(String),
}

fn parse_assignment_filter(text: &str) -> Result<Vec<AssignmentFilter>, ArmError> {
    let unsupported = || {
        ArmError::bad_request(
            "UnsupportedQuery",
            format!("The filter '{text}' is not supported. Supported filters are atScope(), principalId eq '{{id}}' and assignedTo('{{id}}'), combined with 'and'."),
        )
    };
    let quoted = |t: &str| -> Option<String> {
        let start = t.find('\'')?;
        let end = t.rfind('\'')?;
        (end > start).then(|| t[start + 1..end].to_ascii_lowercase())
    };
    let lower = text.to_ascii_lowercase();
    let mut clauses = Vec::new();
    let mut rest = text;
    let mut rest_lower = lower.as_str();
    loop {
        let (clause, clause_lower, tail) = match rest_lower.find(" and ") {
            Some(i) => (&rest[..i], &rest_lower[..i], Some(i + 5)),
            None => (rest, rest_lower, None),
        };
        let clause_lower = clause_lower.trim();
        let parsed = if clause_lower == "atscope()" {
            AssignmentFilter::AtScope
        } else if clause_lower.starts_with("principalid eq") {
            AssignmentFilter::Principal(quoted(clause).ok_or_else(unsupported)?)
        } else if clause_lower.starts_with("assignedto(") && clause_lower.ends_with(')') {
            AssignmentFilter::AssignedTo(quoted(clause).ok_or_else(unsupported)?)
        } else {
            return Err(unsupported());
        };
        clauses.push(parsed);
        match tail {
            Some(i) => {
                rest = &rest[i..];
                rest_lower = &rest_lower[i..];
            }
            None => return Ok(clauses),
        }
    }
}

fn role_assignment_json(world: &World, ra: &crate::state::RoleAssignment) -> Value {
    let scope = ra.scope.trim_end_matches('/');
    let created = crate::clock::arm_time(ra.created_on);
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}", ra.guid),
        "name": ra.guid,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "scope": ra.scope,
            "roleDefinitionId": world.role_definition_id(&ra.scope, &ra.role),
            "principalId": ra.principal,
            "principalType": ra.principal_type,
            "description": null,
            "condition": null,
            "conditionVersion": null,
            "createdOn": created,
            "updatedOn": created,
            "createdBy": null,
            "updatedBy": null,
            "delegatedManagedIdentityResourceId": null,
        }
    })
}

/// `GET /{scope}/providers/Microsoft.Authorization/roleAssignments` (2022-04-01): the role
/// assignments that apply at the scope (at or above it) or lie below it, standing and
/// activated alike, for a caller who may read role assignments there.
pub fn role_assignments(call: &Call, scope: &str) -> ArmResult {
    let world = call.sim.world();
    call.require(
        &world,
        "Microsoft.Authorization/roleAssignments/read",
        scope,
    )?;
    let clauses = match call.filter() {
        Some(text) => parse_assignment_filter(text)?,
        None => Vec::new(),
    };
    let now = call.sim.clock.now();
    let items = world
        .role_assignments
        .iter()
        .filter(|ra| world.in_scope(scope, &ra.scope))
        .filter(|ra| {
            clauses.iter().all(|clause| match clause {
                AssignmentFilter::AtScope => world.scope_contains(&ra.scope, scope),
                AssignmentFilter::Principal(id) => ra.principal.eq_ignore_ascii_case(id),
                AssignmentFilter::AssignedTo(id) => world
                    .principals(id, now)
                    .iter()
                    .any(|p| ra.principal.eq_ignore_ascii_case(p)),
            })
        })
        .map(|ra| role_assignment_json(&world, ra))
        .collect();
    page(call, &world, "roleAssignments", items)
}

pub fn permissions(call: &Call, scope: &str) -> ArmResult {
    let world = call.sim.world();
    let items = world.permissions_any(&call.caller.principals, scope, call.sim.clock.now());
    page(call, &world, "permissions", items)
}
