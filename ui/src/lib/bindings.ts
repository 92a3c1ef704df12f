// Generated from the Rust types of src-tauri by its `bindings` test: do not edit.
// Run `JUMPGATE_BLESS=1 cargo test -p jumpgate-tray bindings` after changing them.
import { invoke } from "@tauri-apps/api/core";

export type AppState = { signed_in_as: string | null, demo: boolean, demo_users: Array<string>, icon: Icon, tooltip: string, 
/**
 * ARM's time when this was read: countdowns run from it.
 */
now: string, targets: Array<TargetView>, 
/**
 * My active PIM roles.
 */
roles: Array<RoleView>, 
/**
 * My requests waiting for a decision.
 */
pending: Array<PendingView>, 
/**
 * Requests waiting for my decision.
 */
approvals: number, 
/**
 * I decide other people's requests, so the popover shows Approvals: a policy I can read
 * names me as an approver, I have decided a request on this machine in the last 90 days,
 * a request waits for me now, or the configuration says so (`[watch] approver`).
 */
approver: boolean, 
/**
 * I can ask for access, so the popover offers Connect: I am eligible for a PIM role, or
 * I may open JIT on a jump box's resource group already (an Owner, say).
 */
can_connect: boolean, justification: Hints, 
/**
 * Favourite and recently connected jump boxes, kept by the app (`remember_target`).
 */
remembered: Remembered, start_at_login: boolean, 
/**
 * Sign-ins reuse the Azure CLI's `az login` (`sign_in = "azure_cli"`), not a browser.
 */
azure_cli: boolean, 
/**
 * Signed in but no jump box can be read (no standing access): what could be reached,
 * and how. `None` otherwise.
 */
reachable: Reachable | null, 
/**
 * The tenant this state is of (`default` is `[azure]`'s).
 */
tenant: string, 
/**
 * Every tenant of the configuration, when there are several to switch between.
 */
tenants: Array<string>, };

export type TargetView = { vm: string, vm_id: string, 
/**
 * The resource group's name.
 */
resource_group: string, 
/**
 * The subscription's display name, or its id where the name is not known.
 */
subscription: string, ports: Array<PortRule>, open: Array<OpenPort>, };

export type PortRule = { number: number, 
/**
 * The policy's longest request, in minutes.
 */
max_minutes: number, };

export type OpenPort = { port: number, source: string, end: string | null, };

export type RoleView = { kind: Elevation, role: string, scope: string, 
/**
 * When it was activated: PIM lets no one end it in its first five minutes.
 */
start: string | null, end: string | null, };

export type Elevation = "role" | "group" | "entra_role";

export type Reachable = { 
/**
 * Each role or group membership they may activate.
 */
ways: Array<Reach>, 
/**
 * Jump boxes they could read before, newest first: not checked now.
 */
recent: Array<SeenTarget>, 
/**
 * Why group memberships are missing, if they are.
 */
groups_note: string | null, };

export type Reach = { kind: Elevation, 
/**
 * The role's or the group's name.
 */
name: string, 
/**
 * Where it applies: the role's scope; for a group, the scopes of the roles it was seen
 * to hold (none when not known yet).
 */
scopes: Array<ScopeName>, 
/**
 * For a group: the Azure roles it was seen to hold, while the membership was active.
 */
holds: Array<HeldRole>, 
/**
 * The command that activates it.
 */
activate: string, };

export type ScopeName = { scope: string, 
/**
 * As people know it: the subscription's or management group's display name, the
 * resource group's name.
 */
name: string, };

export type HeldRole = { role: string, role_definition_id: string, scope: string, };

export type SeenTarget = { vm: string, vm_id: string, seen: string, };

export type PendingView = { request: string, role: string, status: string, };

export type Hints = { templates: Array<string>, 
/**
 * My latest justifications, newest first.
 */
recent: Array<string>, 
/**
 * What an approver's decision is prefilled with.
 */
approval_templates: Array<string>, };

export type Remembered = { favourites: Array<string>, recent: Array<string>, };

export type Remember = "favourite" | "unfavourite" | "connected";

export type ConnectForm = { vm: string, port: number | null, 
/**
 * ISO 8601 (`PT1H`) or the short form (`1h30m`).
 */
duration: string, justification: string, 
/**
 * `SYSTEM:NUMBER`, or a number alone.
 */
ticket: string | null, 
/**
 * Start the RDP or SSH client once the port answers.
 */
launch: boolean, 
/**
 * The way to reach the VM when several do (a [`WayView`]'s `via`); remembered.
 */
via: string | null, 
/**
 * The person confirmed opening the port to a source range wider than a /24, after a
 * refusal coded `confirm_wide_source` that named it.
 */
allow_wide_source?: boolean, };

export type WayView = { kind: Elevation, 
/**
 * In words: "JIT Requester at rg-jumpboxes", "member of JIT Operators (…)".
 */
label: string, 
/**
 * What to send back as the form's `via` to use it.
 */
via: string, 
/**
 * Known to reach the VM (not only perhaps: a management group, a group whose roles are
 * not known yet).
 */
certain: boolean, 
/**
 * The one chosen for this VM before.
 */
chosen: boolean, };

export type Activated = { kind: Elevation, role: string, 
/**
 * PIM's status: `PendingApproval`, `Provisioned`, …
 */
status: string, 
/**
 * In words, for the popover.
 */
message: string, state: AppState, };

export type FormDraft = { port: number | null, duration: string, justification: string, ticket: string, 
/**
 * The VM's JIT ports as the last read showed them; empty when not known yet.
 */
ports: Array<PortRule>, };

export type FieldProblem = { field: FormField, 
/**
 * The check that failed (`JitPort`, `JitDuration`, `Duration`, `Justification`,
 * `JustificationRule`, `Ticket`): for code, not for people.
 */
rule: string, message: string, };

export type FormField = "port" | "duration" | "justification" | "ticket";

export type Connected = { vm: string, port: number, 
/**
 * `host:port` to connect to.
 */
endpoint: string, steps: Array<StepView>, };

export type StepView = { step: Step, label: string, at: string, detail: string, };

export type ApprovalView = { kind: Elevation, request: string, requester: string, role: string, scope: string, justification: string | null, 
/**
 * In words ("1 h").
 */
duration: string | null, ticket: string | null, age_seconds: number, };

export type Renew = { "type": "role", role: string, } | { "type": "port", vm: string, port: number, };

export type Renewed = { 
/**
 * In words, for the popover.
 */
message: string, state: AppState, };

export type Diagnosis = { checks: Array<Check>, bundle: string, };

export type Check = { 
/**
 * A stable identifier: `config`, `signed_in`, `token`, `eligible`, `jit_role`,
 * `jit_policy`, `port`, `public_ip`, `open_rule`, `reachable`, `client`.
 */
step: string, title: string, status: Status, 
/**
 * What was found.
 */
detail: string, 
/**
 * What to do, when the step failed.
 */
fix: string | null, };

export type Status = "pass" | "fail" | "skip";

export type ExportFormat = "csv" | "json";

export type CommandError = { "kind": "sign_in", "data": Detail } | { "kind": "denied", "data": Detail } | { "kind": "policy", "data": Detail } | { "kind": "unavailable", "data": Detail } | { "kind": "not_found", "data": Detail } | { "kind": "conflict", "data": Detail } | { "kind": "not_available", "data": Detail } | { "kind": "invalid", "data": Detail } | { "kind": "other", "data": Detail };

export type Detail = { code: string, message: string, };

export type Discovered = { email: string, domain: string, tenant_id: string, 
/**
 * Where the configuration will be written.
 */
config_path: string, };

export type SignInChoice = { "type": "app", client_id: string, } | { "type": "azure_cli" };

export type Intent = { view: string, prefill: Prefill | null, refused: string | null, };

export type Prefill = { vm: string, port: number | null, 
/**
 * ISO 8601.
 */
duration: string | null, justification: string | null, };

export type Icon = "signed_out" | "approval_waiting" | "expiring_soon" | "access_open" | "waiting_for_approval" | "idle";

export type Step = "check_access" | "request_role" | "await_approval" | "await_effect" | "detect_ip" | "open_port" | "await_reachable" | "launch";

export type Entry = { seq: number, time: string, prev_hash: string, entry_hash: string, 
/**
 * Who did it (UPN).
 */
who: string, 
/**
 * What: `role_requested`, `role_approved`, `role_denied`, `approval_decided`,
 * `port_opened`, `port_extended`, `role_extended`, `client_launched`, …
 */
what: string, vm?: string | null, port?: number | null, role?: string | null, source_ip?: string | null, duration?: string | null, justification?: string | null, outcome: string, };

export type Record = { 
/**
 * Who did it (UPN).
 */
who: string, 
/**
 * What: `role_requested`, `role_approved`, `role_denied`, `approval_decided`,
 * `port_opened`, `port_extended`, `role_extended`, `client_launched`, …
 */
what: string, vm?: string | null, port?: number | null, role?: string | null, source_ip?: string | null, duration?: string | null, justification?: string | null, outcome: string, };

export type EngineEvent = { "kind": "progress", message: string, } | { "kind": "step", step: Step, detail: string, at: string, skips: Array<Step>, } | { "kind": "request_status", request: string, role: string, status: string, } | { "kind": "watch" } & WatchEvent;

export type WatchEvent = { "event": "request_approved", request: string, role: string, scope: string, approver: string | null, justification: string | null, } | { "event": "request_denied", request: string, role: string, scope: string, approver: string | null, justification: string | null, } | { "event": "approval_waiting", request: string, approval: string, requester: string, role: string, scope: string, justification: string | null, duration: string | null, ticket: string | null, } | { "event": "expiry_reminder", access: Access, lead_minutes: number, end: string, } | { "event": "expired", access: Access, end: string, } | { "event": "ended_early", access: Access, end: string, reason: string, code: string | null, } | { "event": "ip_changed", vm: string, vm_id: string, port: number, old: string, new: string, } | { "event": "signed_out", reason: string, } | { "event": "eligibility_added", kind: Elevation, role: string, scope: string, };

export type Access = { "type": "role", role: string, scope: string, } | { "type": "port", vm: string, vm_id: string, port: number, };

/** The events the app sends to the popover, and what each carries. */
export type Events = {
  intent: Intent;
  state: AppState;
  engine: EngineEvent;
  watch: WatchEvent;
};

export function appState(): Promise<AppState> {
  return invoke<AppState>("app_state");
}

export function signInDemo(upn: string): Promise<AppState> {
  return invoke<AppState>("sign_in_demo", { upn });
}

export function signIn(): Promise<AppState> {
  return invoke<AppState>("sign_in");
}

export function cancelSignIn(): Promise<null> {
  return invoke<null>("cancel_sign_in");
}

export function signOut(): Promise<AppState> {
  return invoke<AppState>("sign_out");
}

export function connect(form: ConnectForm): Promise<Connected> {
  return invoke<Connected>("connect", { form });
}

export function checkConnect(form: FormDraft): Promise<Array<FieldProblem>> {
  return invoke<Array<FieldProblem>>("check_connect", { form });
}

export function extend(what: Renew, duration: string, justification: string, confirmed: boolean): Promise<Renewed> {
  return invoke<Renewed>("extend", { what, duration, justification, confirmed });
}

export function endRole(role: string, justification: string): Promise<Renewed> {
  return invoke<Renewed>("end_role", { role, justification });
}

export function ways(vmId: string): Promise<Array<WayView>> {
  return invoke<Array<WayView>>("ways", { vmId });
}

export function activate(role: string, duration: string, justification: string): Promise<Activated> {
  return invoke<Activated>("activate", { role, duration, justification });
}

export function approvals(): Promise<Array<ApprovalView>> {
  return invoke<Array<ApprovalView>>("approvals");
}

export function decide(request: string, approve: boolean, justification: string): Promise<Array<ApprovalView>> {
  return invoke<Array<ApprovalView>>("decide", { request, approve, justification });
}

export function history(query: string): Promise<Array<Entry>> {
  return invoke<Array<Entry>>("history", { query });
}

export function exportHistory(query: string, format: ExportFormat): Promise<string> {
  return invoke<string>("export_history", { query, format });
}

export function diagnose(vm: string | null, port: number | null): Promise<Diagnosis> {
  return invoke<Diagnosis>("diagnose", { vm, port });
}

export function setStartAtLogin(on: boolean): Promise<AppState> {
  return invoke<AppState>("set_start_at_login", { on });
}

export function rememberTarget(vmId: string, what: Remember): Promise<Remembered> {
  return invoke<Remembered>("remember_target", { vmId, what });
}

export function takeIntent(): Promise<Intent | null> {
  return invoke<Intent | null>("take_intent");
}

export function popoverReady(): Promise<null> {
  return invoke<null>("popover_ready");
}

export function closePopover(): Promise<null> {
  return invoke<null>("close_popover");
}

export function discoverTenant(email: string, authority: string): Promise<Discovered> {
  return invoke<Discovered>("discover_tenant", { email, authority });
}

export function writeFirstConfig(email: string, authority: string, tenantId: string, signIn: SignInChoice): Promise<AppState> {
  return invoke<AppState>("write_first_config", { email, authority, tenantId, signIn });
}

export function switchTenant(name: string): Promise<AppState> {
  return invoke<AppState>("switch_tenant", { name });
}
