//! The specs' schemas, and the check of every ARM request body against its operation's.
//!
//! The spec files under `specs/specification` (see `specs/SOURCES.md`) are embedded in the
//! binary and parsed once, on first use. [`Specs::validate`] checks a JSON value against a
//! schema in them: JSON types, required properties, closed enums (`modelAsString` enums are
//! open), polymorphic values by their discriminator, and no property the spec does not
//! declare. The conformance tests use it on the simulator's answers; [`check_request`] uses
//! it on every request body whose operation declares one, and refuses a body that fails with
//! the error ARM's deserialiser gives (400 `InvalidRequestContent`).

use std::fmt;
use std::sync::LazyLock;

use axum::http::Method;
use serde_json::{json, Value};

use crate::error::ArmError;
use crate::server::Sim;

macro_rules! spec {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!("../specs/specification/", $path)),
        )
    };
}

/// Every spec file in `specs/specification` (examples aside), by its path there.
const FILES: &[(&str, &str)] = &[
    spec!("authorization/resource-manager/Microsoft.Authorization/preview/2021-01-01-preview/authorization-RoleAssignmentApprovalCalls.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2020-10-01/RoleAssignmentScheduleInstance.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2020-10-01/RoleAssignmentScheduleRequest.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2020-10-01/RoleEligibilityScheduleInstance.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2020-10-01/RoleEligibilityScheduleRequest.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2020-10-01/RoleManagementPolicy.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2020-10-01/RoleManagementPolicyAssignment.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json"),
    spec!("authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json"),
    spec!("common-types/resource-management/v2/types.ErrorResponse-excerpt.json"),
    spec!("resources/resource-manager/Microsoft.Resources/subscriptions/stable/2022-12-01/subscriptions.json"),
    spec!("security/resource-manager/Microsoft.Security/stable/2020-01-01/jitNetworkAccessPolicies.json"),
    spec!("security/resource-manager/common/v1/types.json"),
];

/// Spec operations with a request body that the simulator does not serve, and why. Their
/// bodies are not checked: the simulator answers them 404 or 405 whatever they carry (and
/// `PUT /{roleAssignmentId}` would otherwise claim every path).
pub const NOT_SERVED: &[(&str, &str, &str)] = &[
    (
        "post",
        "/{scope}/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/{roleEligibilityScheduleRequestName}/validate",
        "admins' eligibility requests are carried out at once; Jumpgate never validates one first",
    ),
    (
        "put",
        "/{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments/{roleManagementPolicyAssignmentName}",
        "every role has a policy at every scope; policies are changed, never assigned",
    ),
    (
        "put",
        "/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
        "Jumpgate makes no standing role assignments: admins make users eligible through PIM instead",
    ),
    (
        "put",
        "/{roleAssignmentId}",
        "Jumpgate makes no standing role assignments: admins make users eligible through PIM instead",
    ),
    (
        "post",
        "/providers/Microsoft.Resources/checkResourceName",
        "Jumpgate creates no resources whose names need checking",
    ),
    (
        "post",
        "/subscriptions/{subscriptionId}/providers/Microsoft.Resources/checkZonePeers/",
        "Jumpgate does not place resources in zones",
    ),
];

/// At most this many violations are collected for one value.
const MAX_VIOLATIONS: usize = 20;

/// The open schema: what a `$ref` into a file the folder lacks stands for.
static OPEN: Value = Value::Null;

static SPECS: LazyLock<Specs> = LazyLock::new(|| Specs {
    files: FILES
        .iter()
        .map(|(path, text)| (*path, serde_json::from_str(text).unwrap_or(Value::Null)))
        .collect(),
});

static BODY_OPERATIONS: LazyLock<Vec<BodyOperation>> =
    LazyLock::new(|| body_operations(specs(), NOT_SERVED));

/// The Microsoft Graph operations the simulator serves, transcribed from Microsoft's v1.0
/// metadata and docs (see `specs/graph/SOURCES.md`), in the same dialect as the ARM specs.
const GRAPH_FILES: &[(&str, &str)] = &[
    (
        "graph/privilegedAccessGroup.json",
        include_str!("../specs/graph/privilegedAccessGroup.json"),
    ),
    (
        "graph/roleManagementDirectory.json",
        include_str!("../specs/graph/roleManagementDirectory.json"),
    ),
    (
        "graph/roleManagementDirectoryBeta.json",
        include_str!("../specs/graph/roleManagementDirectoryBeta.json"),
    ),
];

/// The path prefix of Graph's v1.0 operations, which their templates leave out.
pub const GRAPH_BASE: &str = "/v1.0";

/// The path prefix of Graph's beta operations (PIM for Entra roles' approvals).
pub const GRAPH_BETA: &str = "/beta";

/// A Graph path without its version prefix, as the transcriptions' templates are written.
fn graph_template_path(path: &str) -> &str {
    path.strip_prefix(GRAPH_BASE)
        .or_else(|| path.strip_prefix(GRAPH_BETA))
        .unwrap_or(path)
}

static GRAPH_SPECS: LazyLock<Specs> = LazyLock::new(|| Specs {
    files: GRAPH_FILES
        .iter()
        .map(|(path, text)| (*path, serde_json::from_str(text).unwrap_or(Value::Null)))
        .collect(),
});

static GRAPH_BODY_OPERATIONS: LazyLock<Vec<BodyOperation>> =
    LazyLock::new(|| body_operations(graph_specs(), &[]));

fn body_operations(specs: &'static Specs, not_served: &[(&str, &str, &str)]) -> Vec<BodyOperation> {
    specs
        .operations()
        .filter(|op| {
            !not_served
                .iter()
                .any(|(m, t, _)| *m == op.method && *t == op.template)
        })
        .filter_map(|op| {
            let (file, body) = op.body(specs)?;
            Some(BodyOperation {
                segments: segments(specs, &op),
                operation: op,
                file,
                body,
            })
        })
        .collect()
}

/// The embedded spec files.
pub fn specs() -> &'static Specs {
    &SPECS
}

/// The embedded Microsoft Graph excerpt (`specs/graph/`).
pub fn graph_specs() -> &'static Specs {
    &GRAPH_SPECS
}

/// Loaded spec files, with `$ref` resolution across them.
pub struct Specs {
    files: Vec<(&'static str, Value)>,
}

/// One operation of a spec file.
#[derive(Clone, Copy)]
pub struct Operation<'a> {
    /// The spec file, relative to `specs/specification`.
    pub file: &'static str,
    /// Lower case, as the spec writes it.
    pub method: &'a str,
    /// The path template, without any `?…` the spec adds to tell operations apart.
    pub template: &'a str,
    /// The operation object.
    pub spec: &'a Value,
    /// Parameters declared for every operation of the path.
    pub path_params: &'a [Value],
}

impl<'a> Operation<'a> {
    /// The declared parameters, the path's and the operation's, as written (`$ref`s unresolved).
    pub fn parameters(&self) -> impl Iterator<Item = &'a Value> + 'a {
        let own: &'a [Value] = self.spec["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        self.path_params.iter().chain(own.iter())
    }

    /// The body parameter's schema and the file it is read in, if the operation has one.
    pub fn body(&self, specs: &'a Specs) -> Option<(&'static str, &'a Value)> {
        self.parameters().find_map(|p| {
            let (file, _, p) = match p["$ref"].as_str() {
                Some(r) => specs.resolve(self.file, r),
                None => (self.file, "", p),
            };
            (p["in"] == "body").then_some((file, &p["schema"]))
        })
    }

    fn body_required(&self, specs: &Specs) -> bool {
        self.parameters().any(|p| {
            let p = match p["$ref"].as_str() {
                Some(r) => specs.resolve(self.file, r).2,
                None => p,
            };
            p["in"] == "body" && p["required"] == true
        })
    }
}

/// A served operation with a request body, ready to match paths.
struct BodyOperation {
    operation: Operation<'static>,
    segments: Vec<Segment>,
    file: &'static str,
    body: &'static Value,
}

/// One segment of a path template.
enum Segment {
    Literal(&'static str),
    /// A path parameter; `many` when it may span several segments (or none), as `{scope}`
    /// does (`x-ms-skip-url-encoding`); `choices` when it is an enum.
    Param {
        many: bool,
        choices: Vec<String>,
    },
}

fn segments(specs: &'static Specs, op: &Operation<'static>) -> Vec<Segment> {
    op.template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                None => Segment::Literal(s),
                Some(name) => {
                    let param = op
                        .parameters()
                        .map(|p| match p["$ref"].as_str() {
                            Some(r) => specs.resolve(op.file, r).2,
                            None => p,
                        })
                        .find(|p| p["name"] == name && p["in"] == "path");
                    Segment::Param {
                        many: param.is_some_and(|p| p["x-ms-skip-url-encoding"] == true),
                        choices: param
                            .and_then(|p| p["enum"].as_array())
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    }
                }
            },
        )
        .collect()
}

fn segments_match(template: &[Segment], path: &[&str]) -> bool {
    match template.split_first() {
        None => path.is_empty(),
        Some((Segment::Literal(l), rest)) => {
            path.first().is_some_and(|s| s.eq_ignore_ascii_case(l))
                && segments_match(rest, &path[1..])
        }
        Some((Segment::Param { many: true, .. }, rest)) => {
            (0..=path.len()).any(|skip| segments_match(rest, &path[skip..]))
        }
        Some((Segment::Param { choices, .. }, rest)) => path.first().is_some_and(|s| {
            (choices.is_empty() || choices.iter().any(|c| c.eq_ignore_ascii_case(s)))
                && segments_match(rest, &path[1..])
        }),
    }
}

impl Specs {
    /// Every embedded file and its parsed JSON.
    pub fn files(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.files.iter().map(|(p, v)| (*p, v))
    }

    pub fn doc(&self, file: &str) -> Option<&Value> {
        self.files.iter().find(|(p, _)| *p == file).map(|(_, v)| v)
    }

    /// Every operation of every file (`paths` and `x-ms-paths`).
    pub fn operations(&self) -> impl Iterator<Item = Operation<'_>> {
        self.files.iter().flat_map(|(file, doc)| {
            let file: &'static str = file;
            ["paths", "x-ms-paths"]
                .into_iter()
                .filter_map(move |section| doc[section].as_object())
                .flatten()
                .flat_map(move |(template, ops)| {
                    let path_params: &[Value] = ops["parameters"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]);
                    let template = template.split('?').next().unwrap_or(template);
                    ops.as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(method, _)| *method != "parameters")
                        .map(move |(method, spec)| Operation {
                            file,
                            method: method.as_str(),
                            template,
                            spec,
                            path_params,
                        })
                })
        })
    }

    /// The served operation with a request body that `method` on `path` is: of those whose
    /// template matches, the one with the most literal segments.
    pub fn body_operation(&self, method: &str, path: &str) -> Option<Operation<'static>> {
        find_body_operation(method, path).map(|op| op.operation)
    }

    /// Resolves a `$ref` seen in `file`: the file it lands in, the definition's name and the
    /// schema. The folder keeps only an excerpt of the shared common types: a definition found
    /// there is used; anything else it lacks is taken as an open schema.
    pub fn resolve<'s>(
        &'s self,
        file: &str,
        reference: &'s str,
    ) -> (&'static str, &'s str, &'s Value) {
        let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let name = pointer.rsplit('/').next().unwrap_or("");
        let wanted = if target.is_empty() {
            file.to_string()
        } else {
            normalize(&format!("{}/{target}", parent(file)))
        };
        let found = self.files.iter().find(|(p, _)| *p == wanted).or_else(|| {
            // `types.ErrorResponse-excerpt.json` stands in for a missing `types.json`.
            let stem = wanted.strip_suffix(".json").unwrap_or(&wanted);
            self.files
                .iter()
                .find(|(p, _)| p.starts_with(&format!("{stem}.")) && p.ends_with("-excerpt.json"))
        });
        match found {
            Some((path, doc)) => (path, name, doc.pointer(pointer).unwrap_or(&OPEN)),
            None => ("", name, &OPEN),
        }
    }

    /// The subtype of a polymorphic definition that `value`'s discriminator names.
    fn subtype<'s>(
        &'s self,
        file: &'static str,
        name: &str,
        schema: &Value,
        value: &Value,
    ) -> Option<(&'s str, &'s Value)> {
        let field = schema["discriminator"].as_str()?;
        let wanted = value.get(field)?.as_str()?;
        let suffix = format!("/{name}");
        self.doc(file)?["definitions"]
            .as_object()?
            .iter()
            .find(|(def_name, def)| {
                let tag = def["x-ms-discriminator-value"]
                    .as_str()
                    .unwrap_or(def_name.as_str());
                tag == wanted
                    && def["allOf"].as_array().is_some_and(|all| {
                        all.iter()
                            .any(|a| a["$ref"].as_str().is_some_and(|r| r.ends_with(&suffix)))
                    })
            })
            .map(|(n, def)| (n.as_str(), def))
    }

    /// Follows `$ref`s (and, with `dispatch`, a discriminator to its subtype): the file, the
    /// definition's name (or `name` for an inline schema) and the schema.
    fn settle<'s>(
        &'s self,
        mut file: &'static str,
        mut schema: &'s Value,
        mut name: String,
        value: &Value,
        dispatch: bool,
    ) -> (&'static str, &'s Value, String) {
        for _ in 0..32 {
            let Some(r) = schema["$ref"].as_str() else {
                break;
            };
            let (f, n, s) = self.resolve(file, r);
            if dispatch {
                if let Some((sub_name, sub)) = self.subtype(f, n, s, value) {
                    return (f, sub, sub_name.to_string());
                }
            }
            (file, schema, name) = (f, s, n.to_string());
        }
        (file, schema, name)
    }

    /// The properties an object schema declares, through `allOf`: (key, file, schema, the
    /// name of its owner); the required ones; and whether it admits others.
    fn shape<'s>(
        &'s self,
        file: &'static str,
        schema: &'s Value,
        name: &str,
        shape: &mut Shape<'s>,
    ) {
        if let Some(props) = schema["properties"].as_object() {
            for (key, sub) in props {
                shape
                    .props
                    .push((key.as_str(), file, sub, name.to_string()));
            }
        }
        shape.required.extend(
            schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            shape.open = true;
        }
        for sub in schema["allOf"].as_array().into_iter().flatten() {
            let (f, s, n) = self.settle(file, sub, name.to_string(), &Value::Null, false);
            self.shape(f, s, &n, shape);
        }
    }

    /// Checks `value` against `schema` (read in `file`). Violations come in document order,
    /// so the first is the one a streaming deserialiser meets first.
    pub fn validate(
        &self,
        file: &'static str,
        schema: &Value,
        value: &Value,
        direction: Direction,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.walk(
            file,
            schema,
            String::new(),
            value,
            &mut path,
            direction,
            &mut out,
        );
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        file: &'static str,
        schema: &Value,
        name: String,
        value: &Value,
        path: &mut Vec<Seg>,
        direction: Direction,
        out: &mut Vec<Violation>,
    ) {
        if out.len() >= MAX_VIOLATIONS {
            return;
        }
        let (file, schema, name) = self.settle(file, schema, name, value, true);
        if value.is_null() {
            return;
        }
        let kind = schema_kind(self, file, schema);
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
            out.push(Violation {
                path: path.clone(),
                kind: ViolationKind::WrongType {
                    expected: kind.to_string(),
                    type_name: type_label(self, file, schema, &name),
                    found: short(value),
                },
            });
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
                out.push(Violation {
                    path: path.clone(),
                    kind: ViolationKind::NotInEnum {
                        type_name: type_label(self, file, schema, &name),
                        found: text.to_string(),
                        allowed: options
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    },
                });
            }
        }
        if schema["format"] == "date-time" {
            if let Some(text) = value.as_str() {
                if !is_date_time(text, direction) {
                    out.push(Violation {
                        path: path.clone(),
                        kind: ViolationKind::NotDateTime {
                            found: text.to_string(),
                        },
                    });
                }
            }
        }
        if let Some(object) = value.as_object() {
            let mut shape = Shape::default();
            self.shape(file, schema, &name, &mut shape);
            let closed = !shape.open && !shape.props.is_empty();
            for (key, v) in object {
                path.push(Seg::Key(key.clone()));
                let mut declared = false;
                for (_, f, sub, owner) in shape.props.iter().filter(|(k, ..)| *k == key.as_str()) {
                    declared = true;
                    let child = format!("{owner}{}", upper_first(key));
                    self.walk(f, sub, child, v, path, direction, out);
                }
                if !declared && closed && out.len() < MAX_VIOLATIONS {
                    out.push(Violation {
                        path: path.clone(),
                        kind: ViolationKind::Undeclared {
                            property: key.clone(),
                            type_name: object_label(&name),
                        },
                    });
                }
                if v.is_null()
                    && direction == Direction::Request
                    && shape.required.contains(&key.as_str())
                    && out.len() < MAX_VIOLATIONS
                {
                    out.push(Violation {
                        path: path.clone(),
                        kind: ViolationKind::NullRequired {
                            property: key.clone(),
                        },
                    });
                }
                path.pop();
            }
            let mut seen: Vec<&str> = Vec::new();
            for required in &shape.required {
                if !object.contains_key(*required)
                    && !seen.contains(required)
                    && out.len() < MAX_VIOLATIONS
                {
                    seen.push(required);
                    out.push(Violation {
                        path: path.clone(),
                        kind: ViolationKind::Missing {
                            property: required.to_string(),
                        },
                    });
                }
            }
        }
        if let Some(array) = value.as_array() {
            let items = &schema["items"];
            if !items.is_null() {
                let child = format!("{name}Item");
                for (i, v) in array.iter().enumerate() {
                    if out.len() >= MAX_VIOLATIONS {
                        break;
                    }
                    path.push(Seg::Index(i));
                    self.walk(file, items, child.clone(), v, path, direction, out);
                    path.pop();
                }
            }
        }
    }
}

#[derive(Default)]
struct Shape<'s> {
    props: Vec<(&'s str, &'static str, &'s Value, String)>,
    required: Vec<&'s str>,
    open: bool,
}

/// The JSON type a schema asks for: its `type`, or `object` for one that declares
/// properties (itself or through `allOf`).
fn schema_kind<'v>(specs: &Specs, file: &'static str, schema: &'v Value) -> &'v str {
    if let Some(kind) = schema["type"].as_str() {
        return kind;
    }
    if schema.get("properties").is_some() {
        return "object";
    }
    let mut shape = Shape::default();
    specs.shape(file, schema, "", &mut shape);
    if shape.props.is_empty() {
        ""
    } else {
        "object"
    }
}

/// The type a .NET deserialiser would name for a schema.
fn type_label(specs: &Specs, file: &'static str, schema: &Value, name: &str) -> String {
    let closed_enum = schema["enum"].is_array()
        && !schema["x-ms-enum"]["modelAsString"]
            .as_bool()
            .unwrap_or(false);
    if closed_enum {
        if let Some(n) = schema["x-ms-enum"]["name"].as_str() {
            return n.to_string();
        }
    }
    match (schema_kind(specs, file, schema), schema["format"].as_str()) {
        ("string", Some("date-time")) => "System.DateTime".into(),
        ("string", _) if closed_enum => object_label(name),
        ("string", _) => "System.String".into(),
        ("integer", Some("int64")) => "System.Int64".into(),
        ("integer", _) => "System.Int32".into(),
        ("number", _) => "System.Double".into(),
        ("boolean", _) => "System.Boolean".into(),
        ("array", _) => {
            let items = &schema["items"];
            let (f, s, n) = specs.settle(file, items, format!("{name}Item"), &Value::Null, false);
            format!(
                "System.Collections.Generic.IList`1[{}]",
                type_label(specs, f, s, &n)
            )
        }
        _ => object_label(name),
    }
}

fn object_label(name: &str) -> String {
    if name.is_empty() {
        "System.Object".into()
    } else {
        name.to_string()
    }
}

fn upper_first(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A value as a message shows it: compact JSON, cut at 60 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

fn is_date_time(text: &str, direction: Direction) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || (direction == Direction::Request
            && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok())
}

fn parent(file: &str) -> &str {
    file.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.join("/")
}

/// Whether a value is a request's body or an answer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Null for a required property is refused, and a date-time may omit its offset.
    Request,
    /// Date-times must be RFC 3339.
    Response,
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A JSON path as Json.NET writes it: `properties.virtualMachines[0].ports[0].number`, with
/// `['odd key']` for keys that are not plain names; `` for the root.
pub fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k)
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '@' | '-')) =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => {
                out.push_str("['");
                out.push_str(&k.replace('\'', "\\'"));
                out.push_str("']");
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// What is wrong where.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// For `Missing`, the object that lacks the property; otherwise the value at fault.
    pub path: Vec<Seg>,
    pub kind: ViolationKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ViolationKind {
    /// `expected` is the schema's JSON type; `type_name` the .NET type a deserialiser names.
    WrongType {
        expected: String,
        type_name: String,
        found: String,
    },
    NotInEnum {
        type_name: String,
        found: String,
        allowed: Vec<String>,
    },
    NotDateTime {
        found: String,
    },
    Missing {
        property: String,
    },
    /// A required property given as `null` (requests only).
    NullRequired {
        property: String,
    },
    Undeclared {
        property: String,
        type_name: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match path_text(&self.path) {
            p if p.is_empty() => "body".to_string(),
            p if p.starts_with('[') => format!("body{p}"),
            p => format!("body.{p}"),
        };
        match &self.kind {
            ViolationKind::WrongType {
                expected, found, ..
            } => write!(f, "{at}: expected {expected}, found {found}"),
            ViolationKind::NotInEnum { found, allowed, .. } => {
                write!(
                    f,
                    "{at}: '{found}' is not one of the closed enum {allowed:?}"
                )
            }
            ViolationKind::NotDateTime { found } => write!(f, "{at}: '{found}' is not a date-time"),
            ViolationKind::Missing { property } => {
                write!(f, "{at}: required property '{property}' is missing")
            }
            ViolationKind::NullRequired { property } => {
                write!(f, "{at}: required property '{property}' is null")
            }
            ViolationKind::Undeclared { property, .. } => {
                write!(f, "{at}: property '{property}' is not declared by the spec")
            }
        }
    }
}

impl Violation {
    /// What Json.NET, ARM's deserialiser, says about it, with the line and position in `text`
    /// (the body it was found in).
    pub fn deserializer_message(&self, text: &str) -> String {
        let (anchor, what) = match &self.kind {
            ViolationKind::WrongType {
                type_name, found, ..
            }
            | ViolationKind::NotInEnum {
                type_name, found, ..
            } => {
                let found = match self.kind {
                    ViolationKind::NotInEnum { .. } => format!("\"{found}\""),
                    _ => found.clone(),
                };
                (
                    Anchor::Value,
                    format!("Error converting value {found} to type '{type_name}'."),
                )
            }
            ViolationKind::NotDateTime { found } => (
                Anchor::Value,
                format!("Could not convert string to DateTime: {found}."),
            ),
            ViolationKind::Missing { property } => (
                Anchor::End,
                format!("Required property '{property}' not found in JSON."),
            ),
            ViolationKind::NullRequired { property } => (
                Anchor::Value,
                format!("Required property '{property}' expects a value but got null."),
            ),
            ViolationKind::Undeclared {
                property,
                type_name,
            } => (
                Anchor::Key,
                format!("Could not find member '{property}' on object of type '{type_name}'."),
            ),
        };
        let (line, position) = locate(text, &self.path, anchor);
        format!(
            "{what} Path '{}', line {line}, position {position}.",
            path_text(&self.path)
        )
    }
}

/// Where in the text a violation is reported: just after a property's name and colon, after
/// a value (after the opening bracket of an object or array), or after an object's closing
/// brace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Key,
    Value,
    End,
}

/// The 1-based line and the position on it (characters read so far on that line) at which
/// Json.NET reports `target`, in the JSON `text`.
fn locate(text: &str, target: &[Seg], anchor: Anchor) -> (usize, usize) {
    let mut scan = Scan {
        bytes: text.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        target,
        anchor,
    };
    let mut path = Vec::new();
    match scan.value(&mut path) {
        Some((line, start, at)) => (
            line,
            String::from_utf8_lossy(text.as_bytes().get(start..at).unwrap_or_default())
                .chars()
                .count(),
        ),
        None => (1, 0),
    }
}

struct Scan<'t> {
    bytes: &'t [u8],
    i: usize,
    line: usize,
    line_start: usize,
    target: &'t [Seg],
    anchor: Anchor,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.i) {
            match b {
                b'\n' => {
                    self.i += 1;
                    self.line += 1;
                    self.line_start = self.i;
                }
                b' ' | b'\t' | b'\r' => self.i += 1,
                _ => break,
            }
        }
    }

    fn hit(&self, path: &[Seg], anchor: Anchor) -> Option<(usize, usize, usize)> {
        (anchor == self.anchor && path == self.target).then_some((
            self.line,
            self.line_start,
            self.i,
        ))
    }

    /// Skips a string starting at the current `"`.
    fn string(&mut self) {
        self.i += 1;
        while let Some(&b) = self.bytes.get(self.i) {
            self.i += 1;
            match b {
                b'\\' => self.i += 1,
                b'"' => return,
                _ => {}
            }
        }
    }

    /// Reads one value; `Some((line, line start, index))` once the target is reached.
    fn value(&mut self, path: &mut Vec<Seg>) -> Option<(usize, usize, usize)> {
        self.ws();
        match *self.bytes.get(self.i)? {
            b'{' => {
                self.i += 1;
                if let Some(hit) = self.hit(path, Anchor::Value) {
                    return Some(hit);
                }
                loop {
                    self.ws();
                    match *self.bytes.get(self.i)? {
                        b'}' => {
                            self.i += 1;
                            return self.hit(path, Anchor::End);
                        }
                        b',' => self.i += 1,
                        b'"' => {
                            let start = self.i;
                            self.string();
                            let key = self.bytes.get(start..self.i).unwrap_or_default();
                            let key: String = serde_json::from_slice(key).unwrap_or_default();
                            self.ws();
                            if self.bytes.get(self.i) == Some(&b':') {
                                self.i += 1;
                            }
                            path.push(Seg::Key(key));
                            let found =
                                self.hit(path, Anchor::Key).or_else(|| self.advancing(path));
                            path.pop();
                            if found.is_some() {
                                return found;
                            }
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if let Some(hit) = self.hit(path, Anchor::Value) {
                    return Some(hit);
                }
                let mut index = 0;
                loop {
                    self.ws();
                    match *self.bytes.get(self.i)? {
                        b']' => {
                            self.i += 1;
                            return None;
                        }
                        b',' => self.i += 1,
                        _ => {
                            path.push(Seg::Index(index));
                            let found = self.advancing(path);
                            path.pop();
                            if found.is_some() {
                                return found;
                            }
                            index += 1;
                        }
                    }
                }
            }
            b'"' => {
                self.string();
                self.hit(path, Anchor::Value)
            }
            _ => {
                while let Some(&b) = self.bytes.get(self.i) {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.i += 1;
                }
                self.hit(path, Anchor::Value)
            }
        }
    }

    /// A value that must move the cursor: malformed text ends the scan instead of looping.
    fn advancing(&mut self, path: &mut Vec<Seg>) -> Option<(usize, usize, usize)> {
        let before = self.i;
        let found = self.value(path);
        if found.is_none() && self.i == before {
            self.i = self.bytes.len();
        }
        found
    }
}

/// A request body refused by its operation's schema.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The spec's `operationId`.
    pub operation: String,
    /// The `error.message` ARM answers.
    pub message: String,
    /// Every violation found (at most 20), each naming its path.
    pub errors: Vec<String>,
}

fn find_body_operation(method: &str, path: &str) -> Option<&'static BodyOperation> {
    find_in(&BODY_OPERATIONS, method, path)
}

fn find_in(
    operations: &'static [BodyOperation],
    method: &str,
    path: &str,
) -> Option<&'static BodyOperation> {
    let method = method.to_ascii_lowercase();
    if !matches!(method.as_str(), "put" | "patch" | "post") {
        return None;
    }
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    operations
        .iter()
        .filter(|op| op.operation.method == method && segments_match(&op.segments, &parts))
        // The most literal segments wins; then the fewest segments (`/providers/…` over
        // `/{scope}/providers/…` for a path at the root).
        .max_by_key(|op| {
            let literals = op
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            (literals, std::cmp::Reverse(op.segments.len()))
        })
}

/// The spec operations whose request bodies are checked: every one with a body parameter
/// that is not in [`NOT_SERVED`].
pub fn validated_operations() -> impl Iterator<Item = Operation<'static>> {
    BODY_OPERATIONS.iter().map(|op| op.operation)
}

/// Checks a request's body against its operation's schema. `Ok` for a request whose
/// operation has no body (or that no served spec operation matches).
pub fn validate_request(method: &str, path: &str, body: &[u8]) -> Result<(), Refusal> {
    let Some(op) = find_body_operation(method, path) else {
        return Ok(());
    };
    let specs = specs();
    let operation = op.operation.spec["operationId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let refuse = |detail: String, errors: Vec<String>| Refusal {
        operation: operation.clone(),
        message: format!(
            "The request content was invalid and could not be deserialized: '{detail}'."
        ),
        errors,
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        if !op.operation.body_required(specs) {
            return Ok(());
        }
        let detail = "the request body is empty".to_string();
        return Err(refuse(detail.clone(), vec![detail]));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err(refuse(e.to_string(), vec![e.to_string()])),
    };
    let violations = specs.validate(op.file, op.body, &value, Direction::Request);
    let Some(first) = violations.first() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(body);
    Err(refuse(
        first.deserializer_message(&text),
        violations.iter().map(ToString::to_string).collect(),
    ))
}

/// The simulator's check of an ARM request: a body its operation's schema refuses is
/// answered 400 `InvalidRequestContent` and recorded as a `request.invalid` event.
pub fn check_request(sim: &Sim, method: &Method, path: &str, body: &[u8]) -> Result<(), ArmError> {
    let Err(refusal) = validate_request(method.as_str(), path, body) else {
        return Ok(());
    };
    let now = sim.clock.now();
    sim.world().record(
        now,
        "request.invalid",
        json!({
            "method": method.as_str(),
            "path": path,
            "operation": refusal.operation,
            "code": "InvalidRequestContent",
            "message": refusal.message,
            "errors": refusal.errors,
        }),
    );
    Err(ArmError::bad_request(
        "InvalidRequestContent",
        refusal.message,
    ))
}

/// The served Microsoft Graph operations whose request bodies are checked.
pub fn validated_graph_operations() -> impl Iterator<Item = Operation<'static>> {
    GRAPH_BODY_OPERATIONS.iter().map(|op| op.operation)
}

/// The served Graph operation with a request body that `method` on `path` (with or without
/// the `/v1.0` prefix) is.
pub fn graph_body_operation(method: &str, path: &str) -> Option<Operation<'static>> {
    let path = graph_template_path(path);
    find_in(&GRAPH_BODY_OPERATIONS, method, path).map(|op| op.operation)
}

/// Checks a Microsoft Graph request's body against its operation's schema in the excerpt,
/// with Graph's wording. `Ok` for a request whose operation has no body.
pub fn validate_graph_request(method: &str, path: &str, body: &[u8]) -> Result<(), Refusal> {
    let path = graph_template_path(path);
    let Some(op) = find_in(&GRAPH_BODY_OPERATIONS, method, path) else {
        return Ok(());
    };
    let specs = graph_specs();
    let operation = op.operation.spec["operationId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let unreadable = || {
        Refusal {
        operation: operation.clone(),
        message: "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.".into(),
        errors: vec!["the body is not JSON".into()],
    }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        if op.operation.body_required(specs) {
            return Err(unreadable());
        }
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(unreadable());
    };
    let violations = specs.validate(op.file, op.body, &value, Direction::Request);
    let Some(first) = violations.first() else {
        return Ok(());
    };
    Err(Refusal {
        operation,
        message: first.graph_message(),
        errors: violations.iter().map(ToString::to_string).collect(),
    })
}

impl Violation {
    /// What Microsoft Graph's OData reader says about it.
    pub fn graph_message(&self) -> String {
        let unquoted = |found: &str| found.trim_matches('"').to_string();
        match &self.kind {
            ViolationKind::WrongType {
                expected, found, ..
            } => {
                let node = match found.chars().next() {
                    Some('{') => "StartObject",
                    Some('[') => "StartArray",
                    _ => "PrimitiveValue",
                };
                match expected.as_str() {
                    "object" => format!("An unexpected '{node}' node was found when reading from the JSON reader. A 'StartObject' node was expected."),
                    "array" => format!("An unexpected '{node}' node was found when reading from the JSON reader. A 'StartArray' node was expected."),
                    other => {
                        let edm = match other {
                            "boolean" => "Edm.Boolean",
                            "integer" => "Edm.Int32",
                            "number" => "Edm.Double",
                            _ => "Edm.String",
                        };
                        format!(
                            "Cannot convert the literal '{}' to the expected type '{edm}'.",
                            unquoted(found)
                        )
                    }
                }
            }
            ViolationKind::NotInEnum { found, .. } => {
                format!("Requested value '{found}' was not found.")
            }
            ViolationKind::NotDateTime { found } => format!(
                "Cannot convert the literal '{found}' to the expected type 'Edm.DateTimeOffset'."
            ),
            ViolationKind::Missing { property } => {
                format!("The request body must contain the property '{property}'.")
            }
            ViolationKind::NullRequired { property } => {
                format!("The property '{property}' cannot be null.")
            }
            ViolationKind::Undeclared { property, .. } => format!(
                "Property '{property}' does not exist as a declared property or extension property."
            ),
        }
    }
}
