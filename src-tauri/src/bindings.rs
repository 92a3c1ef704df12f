//! The popover's TypeScript bindings (`ui/src/lib/bindings.ts`), generated from the Rust
//! types and the command list. The test fails when the committed file differs from what the
//! code generates; `JUMPGATE_BLESS=1 cargo test -p jumpgate-tray bindings` rewrites it.

use ts_rs::{Config, TS};

use crate::commands::*;
use crate::firstrun::{Discovered, SignInChoice};
use crate::remembered::{Remember, Remembered};
use crate::tray::{Intent, Prefill};
use jumpgate_azure::access::{HeldRole, SeenTarget};
use jumpgate_azure::doctor::{Check, Status};
use jumpgate_azure::engine::{Reach, Reachable, ScopeName};
use jumpgate_core::audit::{Entry, Record};
use jumpgate_core::events::{Access, Elevation, EngineEvent, WatchEvent};
use jumpgate_core::phase::Step;
use jumpgate_core::policy::{FieldProblem, FormField};
use jumpgate_core::tray::Icon;

fn cfg() -> Config {
    Config::new().with_large_int("number")
}

fn decl<T: TS>() -> String {
    format!("export {}\n", T::decl(&cfg()))
}

fn name<T: TS + ?Sized>() -> String {
    T::name(&cfg())
}

/// One command: its name, its arguments (as Rust declares them) and what it answers.
struct Command {
    name: &'static str,
    args: Vec<(&'static str, String)>,
    answer: String,
}

macro_rules! command {
    ($name:literal, [$($arg:ident: $ty:ty),*], $answer:ty) => {
        Command {
            name: $name,
            args: vec![$((stringify!($arg), name::<$ty>())),*],
            answer: name::<$answer>(),
        }
    };
}

fn commands() -> Vec<Command> {
    vec![
        command!("app_state", [], AppState),
        command!("sign_in_demo", [upn: String], AppState),
        command!("sign_in", [], AppState),
        command!("cancel_sign_in", [], ()),
        command!("sign_out", [], AppState),
        command!("connect", [form: ConnectForm], Connected),
        command!("check_connect", [form: FormDraft], Vec<FieldProblem>),
        command!("extend", [what: Renew, duration: String, justification: String, confirmed: bool], Renewed),
        command!("end_role", [role: String, justification: String], Renewed),
        command!("ways", [vm_id: String], Vec<WayView>),
        command!("activate", [role: String, duration: String, justification: String], Activated),
        command!("approvals", [], Vec<ApprovalView>),
        command!("decide", [request: String, approve: bool, justification: String], Vec<ApprovalView>),
        command!("history", [query: String], Vec<Entry>),
        command!("export_history", [query: String, format: ExportFormat], String),
        command!("diagnose", [vm: Option<String>, port: Option<u16>], Diagnosis),
        command!("set_start_at_login", [on: bool], AppState),
        command!("remember_target", [vm_id: String, what: Remember], Remembered),
        command!("take_intent", [], Option<Intent>),
        command!("popover_ready", [], ()),
        command!("close_popover", [], ()),
        command!("discover_tenant", [email: String, authority: String], Discovered),
        command!("write_first_config", [email: String, authority: String, tenant_id: String, sign_in: SignInChoice], AppState),
        command!("switch_tenant", [name: String], AppState),
    ]
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The whole file.
pub fn generate() -> String {
    let mut out = String::from(
        "// Generated from the Rust types of src-tauri by its `bindings` test: do not edit.\n\
         // Run `JUMPGATE_BLESS=1 cargo test -p jumpgate-tray bindings` after changing them.\n\
         import { invoke } from \"@tauri-apps/api/core\";\n\n",
    );
    for d in [
        decl::<AppState>(),
        decl::<TargetView>(),
        decl::<PortRule>(),
        decl::<OpenPort>(),
        decl::<RoleView>(),
        decl::<Elevation>(),
        decl::<Reachable>(),
        decl::<Reach>(),
        decl::<ScopeName>(),
        decl::<HeldRole>(),
        decl::<SeenTarget>(),
        decl::<PendingView>(),
        decl::<Hints>(),
        decl::<Remembered>(),
        decl::<Remember>(),
        decl::<ConnectForm>(),
        decl::<WayView>(),
        decl::<Activated>(),
        decl::<FormDraft>(),
        decl::<FieldProblem>(),
        decl::<FormField>(),
        decl::<Connected>(),
        decl::<StepView>(),
        decl::<ApprovalView>(),
        decl::<Renew>(),
        decl::<Renewed>(),
        decl::<Diagnosis>(),
        decl::<Check>(),
        decl::<Status>(),
        decl::<ExportFormat>(),
        decl::<CommandError>(),
        decl::<Detail>(),
        decl::<Discovered>(),
        decl::<SignInChoice>(),
        decl::<Intent>(),
        decl::<Prefill>(),
        decl::<Icon>(),
        decl::<Step>(),
        decl::<Entry>(),
        decl::<Record>(),
        decl::<EngineEvent>(),
        decl::<WatchEvent>(),
        decl::<Access>(),
    ] {
        out.push_str(&d);
        out.push('\n');
    }
    out.push_str("/** The events the app sends to the popover, and what each carries. */\n");
    out.push_str("export type Events = {\n  intent: Intent;\n  state: AppState;\n  engine: EngineEvent;\n  watch: WatchEvent;\n};\n\n");
    for c in commands() {
        let params: Vec<String> = c
            .args
            .iter()
            .map(|(n, t)| format!("{}: {t}", camel(n)))
            .collect();
        let args = if c.args.is_empty() {
            String::new()
        } else {
            format!(
                ", {{ {} }}",
                c.args
                    .iter()
                    .map(|(n, _)| camel(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push_str(&format!(
            "export function {}({}): Promise<{}> {{\n  return invoke<{}>(\"{}\"{args});\n}}\n\n",
            camel(c.name),
            params.join(", "),
            c.answer,
            c.answer,
            c.name
        ));
    }
    out.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_match_the_rust_types_and_commands() {
        let names: Vec<&str> = commands().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            crate::commands::NAMES,
            "every command in commands.in has a binding, in the same order"
        );
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings.ts");
        let fresh = generate();
        if std::env::var_os("JUMPGATE_BLESS").is_some() {
            std::fs::write(&path, &fresh).expect("write the bindings");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "ui/src/lib/bindings.ts is not what the Rust types generate: run JUMPGATE_BLESS=1 cargo test -p jumpgate-tray bindings, and adapt the popover to the change"
        );
    }
}
