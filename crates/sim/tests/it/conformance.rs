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
//!   discriminator, and no property the spec does not declare.
//!
//! Compute and network have no spec file in the folder, only examples; for those the check
//! is the other way round: every key the simulator returns appears in the example, with the
//! same type. Examples for operations the simulator does not serve yet are listed in
//! `NOT_SERVED`, each with its reason; an example in neither list fails the suite.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

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

fn specs_root() -> PathBuf {
    if let Ok(dir) = std::env::var("JUMPGATE_AZURE_SPECS") {
        return PathBuf::from(dir).join("specification");
    }
    // The specs are vendored beside the crate (specs/SOURCES.md gives their provenance).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/specification")
}

/// Loaded spec files, with `$ref` resolution across them.
#[derive(Default)]
struct Specs {
    files: HashMap<PathBuf, Value>,
}

impl Specs {
    fn load(&mut self, file: &Path) -> Value {
        let file = normalize(file);
        self.files
            .entry(file.clone())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("parse {}: {e}", file.display()))
            })
            .clone()
    }

    /// Resolves a `$ref` seen in `file`: returns the file it lands in, the definition name and
    /// the schema.
    fn resolve(&mut self, file: &Path, reference: &str) -> (PathBuf, String, Value) {
        let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let target = if target.is_empty() {
            file.to_path_buf()
        } else {
            normalize(&file.parent().expect("dir").join(target))
        };
        let name = pointer.rsplit('/').next().unwrap_or("").to_string();
        // The folder keeps only an excerpt of the shared common types. A definition found
        // there is used; anything else it lacks (shared parameters, error types) is taken as
        // an open schema, since success bodies never depend on it.
        let target = if target.exists() {
            target
        } else {
            excerpt_for(&target).unwrap_or(target)
        };
        if !target.exists() {
            return (target, name, json!({}));
        }
        let doc = self.load(&target);
        let value = doc.pointer(pointer).cloned().unwrap_or_else(|| json!({}));
        (target, name, value)
    }

    /// Every property name a schema declares, through `allOf` and, for polymorphic values,
    /// the subtype the discriminator picks.
    fn declared(
        &mut self,
        file: &Path,
        schema: &Value,
        value: &Value,
        out: &mut BTreeSet<String>,
    ) -> bool {
        let mut open = false;
        if let Some(r) = schema["$ref"].as_str() {
            let (f, name, s) = self.resolve(file, r);
            if let Some((sf, sub)) = self.subtype(&f, &name, &s, value) {
                return self.declared(&sf, &sub, &Value::Null, out);
            }
            return self.declared(&f, &s, value, out);
        }
        if let Some(props) = schema["properties"].as_object() {
            out.extend(props.keys().cloned());
        }
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            open = true;
        }
        for sub in schema["allOf"].as_array().into_iter().flatten() {
            open |= self.declared(file, sub, &Value::Null, out);
        }
        open
    }

    /// The subtype of a polymorphic definition that `value`'s discriminator names.
    fn subtype(
        &mut self,
        file: &Path,
        name: &str,
        schema: &Value,
        value: &Value,
    ) -> Option<(PathBuf, Value)> {
        let field = schema["discriminator"].as_str()?;
        let wanted = value.get(field)?.as_str()?;
        let doc = self.load(file);
        let defs = doc["definitions"].as_object()?;
        defs.iter()
            .find(|(def_name, def)| {
                let tag = def["x-ms-discriminator-value"]
                    .as_str()
                    .unwrap_or(def_name.as_str());
                tag == wanted
                    && def["allOf"].as_array().is_some_and(|all| {
                        all.iter().any(|a| {
                            a["$ref"]
                                .as_str()
                                .is_some_and(|r| r.ends_with(&format!("/{name}")))
                        })
                    })
            })
            .map(|(_, def)| (file.to_path_buf(), def.clone()))
    }

    fn validate(
        &mut self,
        file: &Path,
        schema: &Value,
        value: &Value,
        at: &str,
        dispatch: bool,
        errors: &mut Vec<String>,
    ) {
        if let Some(r) = schema["$ref"].as_str() {
            let (f, name, s) = self.resolve(file, r);
            if dispatch {
                if let Some((sf, sub)) = self.subtype(&f, &name, &s, value) {
                    return self.validate(&sf, &sub, value, at, true, errors);
                }
            }
            return self.validate(&f, &s, value, at, dispatch, errors);
        }
        if value.is_null() {
            return;
        }
        for sub in schema["allOf"].as_array().into_iter().flatten() {
            self.validate(file, sub, value, at, false, errors);
        }
        let kind = schema["type"]
            .as_str()
            .unwrap_or(if schema.get("properties").is_some() {
                "object"
            } else {
                ""
            });
        let type_ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !type_ok {
            errors.push(format!("{at}: expected {kind}, found {value}"));
            return;
        }
        if let (Some(options), Some(text)) = (schema["enum"].as_array(), value.as_str()) {
            let open = schema["x-ms-enum"]["modelAsString"]
                .as_bool()
                .unwrap_or(false);
            let listed = options
                .iter()
                .any(|o| o.as_str().is_some_and(|o| o.eq_ignore_ascii_case(text)));
            if !open && !listed {
                errors.push(format!(
                    "{at}: '{text}' is not one of the closed enum {options:?}"
                ));
            }
        }
        if schema["format"] == "date-time" {
            if let Some(text) = value.as_str() {
                if chrono::DateTime::parse_from_rfc3339(text).is_err() {
                    errors.push(format!("{at}: '{text}' is not a date-time"));
                }
            }
        }
        if let Some(object) = value.as_object() {
            for required in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(required) {
                    errors.push(format!("{at}: required property '{required}' is missing"));
                }
            }
            if let Some(props) = schema["properties"].as_object() {
                for (key, sub) in props {
                    if let Some(v) = object.get(key) {
                        self.validate(file, sub, v, &format!("{at}.{key}"), true, errors);
                    }
                }
            }
            if dispatch {
                let mut declared = BTreeSet::new();
                let open = self.declared(file, schema, value, &mut declared);
                if !open && !declared.is_empty() {
                    for key in object.keys().filter(|k| !declared.contains(*k)) {
                        errors.push(format!(
                            "{at}: property '{key}' is not declared by the spec"
                        ));
                    }
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, v) in array.iter().enumerate() {
                self.validate(file, items, v, &format!("{at}[{i}]"), true, errors);
            }
        }
    }
}

/// `types.ErrorResponse-excerpt.json` stands in for a missing `types.json` beside it.
fn excerpt_for(missing: &Path) -> Option<PathBuf> {
    let dir = missing.parent()?;
    let stem = missing.file_stem()?.to_string_lossy().to_string();
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&format!("{stem}.")) && n.ends_with("-excerpt.json")
            })
        })
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
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
enum Op {
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
enum Setup {
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

struct Case {
    example: &'static str,
    op: Op,
    setup: Setup,
    params: fn() -> Value,
    /// Keys the simulator returns that this example happens not to show, with the reason.
    extra: &'static [&'static str],
}

const JIT_SUB: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";
const PIM_SUB: &str = "dfa2a084-766f-4003-8ae1-c4aeb893a99f";
const CALLER: &str = "user@my-tenant.com";

fn no_params() -> Value {
    json!({})
}

fn cases() -> Vec<Case> {
    let case = |example, op, setup, params| Case {
        example,
        op,
        setup,
        params,
        extra: &[],
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
        case("PatchRoleAssignmentApprovalStepById.json", Op::Auto, Setup::PendingApproval, no_params),
        case("PutRoleAssignmentApprovalStepById.json", Op::Auto, Setup::PendingApproval, no_params),
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
fn examples(root: &Path) -> HashMap<String, PathBuf> {
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

/// The spec operation an example belongs to: (spec file, operation, path template, path-level
/// parameters).
fn find_operation(
    specs: &mut Specs,
    root: &Path,
    op: &Op,
    example: &str,
) -> Option<(PathBuf, String, Value, String, Vec<Value>)> {
    let spec_files: Vec<PathBuf> = match op {
        Op::Template(..) => return None,
        Op::Spec(file, ..) => vec![root.join(file)],
        Op::Auto => {
            let mut files = Vec::new();
            collect_specs(root, &mut files);
            files
        }
    };
    for file in spec_files {
        let doc = specs.load(&file);
        for section in ["paths", "x-ms-paths"] {
            let Some(paths) = doc[section].as_object() else {
                continue;
            };
            for (template, ops) in paths {
                let Some(ops) = ops.as_object() else { continue };
                for (method, operation) in ops {
                    let linked = operation["x-ms-examples"].as_object().is_some_and(|ex| {
                        ex.values().any(|e| {
                            e["$ref"]
                                .as_str()
                                .is_some_and(|r| r.ends_with(&format!("/{example}")))
                        })
                    });
                    let named = matches!(op, Op::Spec(_, m, p) if m == method && p == template);
                    if linked || named {
                        let path_params = ops
                            .get("parameters")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        let template = template.split('?').next().unwrap_or(template).to_string();
                        return Some((
                            normalize(&file),
                            method.clone(),
                            operation.clone(),
                            template,
                            path_params,
                        ));
                    }
                }
            }
        }
    }
    None
}

fn collect_specs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "examples") {
                collect_specs(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "json")
            && !path.to_string_lossy().contains("common")
        {
            out.push(path);
        }
    }
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
    schema: Option<(PathBuf, Value)>,
}

async fn replay(
    sim: &Sim,
    specs: &mut Specs,
    root: &Path,
    all: &HashMap<String, PathBuf>,
    case: &Case,
    overrides: &Map<String, Value>,
) -> Outcome {
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
    let mut query: Vec<(String, String)> = Vec::new();
    let mut body = None;
    let (method, template, schema) = match find_operation(specs, root, &case.op, case.example) {
        Some((file, method, operation, template, path_params)) => {
            let mut declared = path_params;
            declared.extend(
                operation["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            for p in declared {
                let (_, ref_name, p) = match p["$ref"].as_str() {
                    Some(r) => specs.resolve(&file, r),
                    None => (file.clone(), String::new(), p),
                };
                // Shared parameters whose file is not in the folder: the api-version is the
                // only one that travels in the query; path parameters fill the template below.
                let name = match p["name"].as_str() {
                    Some(n) => n.to_string(),
                    None if ref_name.contains("ApiVersion") => "api-version".to_string(),
                    None => continue,
                };
                let p = if p.get("in").is_some() {
                    p
                } else {
                    json!({"name": name, "in": "query"})
                };
                match (p["in"].as_str(), params.get(&name)) {
                    (Some("query"), Some(Value::String(v))) => query.push((name, v.clone())),
                    // Some examples leave the declared body parameter empty and carry the
                    // request under `body`.
                    (Some("body"), Some(v)) => {
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
                .and_then(|status| {
                    operation["responses"][status]["schema"]
                        .as_object()
                        .map(|s| Value::Object(s.clone()))
                });
            (method, template, status_schema.map(|s| (file, s)))
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
    if let Some(b) = body.as_mut() {
        refresh_times(b, sim.now().await);
    }
    let url = reqwest::Url::parse_with_params(&sim.url(&path), &query).expect("url");
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let token = sim.token(CALLER).await;
    let mut request = sim.http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.expect("replay");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    Outcome {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        example,
        schema,
    }
}

async fn prepare(
    sim: &Sim,
    specs: &mut Specs,
    root: &Path,
    all: &HashMap<String, PathBuf>,
    setup: Setup,
) -> Map<String, Value> {
    let mut overrides = Map::new();
    match setup {
        Setup::None => {}
        Setup::Example(name) => {
            let case = cases()
                .into_iter()
                .find(|c| c.example == name)
                .expect("setup case");
            let out = Box::pin(replay(sim, specs, root, all, &case, &Map::new())).await;
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
                let out = Box::pin(replay(sim, specs, root, all, &case, &Map::new())).await;
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
            let stage = stages.body["properties"]["stages"][0]["name"]
                .as_str()
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
    let root = specs_root();
    let all = examples(&root);
    let mut specs = Specs::default();
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
        let overrides = prepare(&sim, &mut specs, &root, &all, case.setup).await;
        let out = replay(&sim, &mut specs, &root, &all, &case, &overrides).await;
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
                    Some((file, schema)) if !out.body.is_null() => {
                        specs.validate(file, schema, &out.body, "body", true, &mut errors)
                    }
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
    let root = specs_root();
    let mut specs = Specs::default();
    let file = root.join("security/resource-manager/Microsoft.Security/stable/2020-01-01/jitNetworkAccessPolicies.json");
    let schema = json!({"$ref": "#/definitions/JitNetworkAccessPolicy"});
    let good = json!({"properties": {"virtualMachines": [{"id": "x", "ports": [{"number": 22, "protocol": "TCP", "maxRequestAccessDuration": "PT1H"}]}]}});
    let mut errors = Vec::new();
    specs.validate(&file, &schema, &good, "body", true, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    // protocol is an open enum (modelAsString), so SCTP passes; status on a request is not checked here.
    let bad = json!({"invented": 1, "properties": {"virtualMachines": [{"id": "x", "ports": [{"number": "22", "protocol": "SCTP"}, {"number": 3389}]}]}});
    specs.validate(&file, &schema, &bad, "body", true, &mut errors);
    let text = errors.join("\n");
    for expected in [
        "'invented' is not declared",
        "expected integer",
        "'maxRequestAccessDuration' is missing",
        "'protocol' is missing",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
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
