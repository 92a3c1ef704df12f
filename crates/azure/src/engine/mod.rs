//! The engine: the operations the CLI, the watcher and the tray share, carried out against
//! Azure with the decisions of `jumpgate-core`. State changes are published on one broadcast
//! channel of [`EngineEvent`]s, which any front end can subscribe to.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::config::Config;
use jumpgate_core::duration::human;
use jumpgate_core::events::EngineEvent;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::phase::{RequestPhase, Step};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::arm::{Request, Target};
use crate::http::Arm;
use crate::journal::Journal;
use crate::session::Session;
use crate::signin::Authority;
use crate::tokens::{Account, TokenStore};

mod activation;
mod connect;
mod decisions;
mod elevation;
mod jit;
mod targets;

pub use activation::SetMember;
pub use elevation::{pick_role, short_scope, via_name, Way};
pub use jit::{default_port, open_grants, preflight, probe};
pub use targets::{Reach, Reachable, ScopeName};

/// Where to connect: a host and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// A completed step of `connect`.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: Step,
    pub at: DateTime<Utc>,
    pub detail: String,
}

/// How a role was renewed. PIM offers its holder no extension of an activation, so both
/// are a new activation through the role's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Renewal {
    /// It had ended, so it was activated anew.
    NewActivation,
    /// It was still on: it was ended (`SelfDeactivate`) and activated anew.
    Reactivated,
}

impl Renewal {
    /// What happened, for people, with the request's status and whether it waits for an
    /// approver.
    pub fn describe(&self, request: &Request, duration: Duration) -> String {
        let waiting = if RequestPhase::of(&request.status) == RequestPhase::Approved {
            "it is active again".to_string()
        } else {
            format!("{}: it is active again once approved", request.status)
        };
        match self {
            Renewal::NewActivation => format!(
                "{} had ended, so it was activated anew for {} through its policy; {waiting}.",
                request.role,
                human(duration)
            ),
            Renewal::Reactivated => format!(
                "PIM does not let you extend an activation, so {} was ended and activated anew for {} through its policy; {waiting}. Ports it opened stay open until their own end.",
                request.role,
                human(duration)
            ),
        }
    }
}

/// An approver's decision on a request.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub approved: bool,
    pub approver: Option<String>,
    pub justification: Option<String>,
}

/// What `connect` is asked to do.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub vm: String,
    pub port: Option<u16>,
    pub duration: Duration,
    pub justification: String,
    pub ticket: Option<(String, String)>,
    /// Bounds each wait: approval, effect, reachability.
    pub timeout: Duration,
    /// The user agreed to activate a role that reaches JIT only through a wildcard
    /// (Contributor, Owner) when no narrower one exists.
    pub allow_broad_role: bool,
    /// The way to use when several reach the VM: a role's or a group's name
    /// ([`Way::named`]); remembered for the VM.
    pub via: Option<String>,
    /// The user agreed to open the port to a source range wider than a /24, where the
    /// policy admits their address only inside one ([`jumpgate_core::policy::WIDE_SOURCE_BITS`]).
    pub allow_wide_source: bool,
}

/// Where `connect` got to: the port is open and reachable.
#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub vm: String,
    pub vm_id: String,
    pub port: u16,
    pub endpoint: Endpoint,
    pub steps: Vec<StepRecord>,
}

/// How long JIT may take to apply an initiated rule to the network before Jumpgate gives up
/// waiting, in ARM's seconds.
const JIT_APPLY_BUDGET_SECS: i64 = 60;

/// Where a VM's JIT policy stands for the user.
#[derive(Debug, Clone)]
pub enum Located {
    Target(Target),
    /// Named by resource id, but its policy cannot be read before a role is active.
    Unreadable {
        vm_id: String,
    },
}

/// ARM refused to show something for want of a role (403): what an eligible-only user meets.
fn is_refusal(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Arm { status: 403, .. })
}

/// The journal's word for a sign-out the person asked for ([`Engine::sign_out`]).
pub const SIGNED_OUT: &str = "signed_out";

/// The journal's word for a sign-in kept in the keychain ([`Engine::keep_sign_in`]).
pub const SIGNED_IN: &str = "signed_in";

/// How many resource groups [`Engine::standing_jit`] reads permissions at, at most.
pub const STANDING_CHECK_GROUPS: usize = 5;

/// How long [`Engine::standing_jit`]'s answer holds for one account and the same resource
/// groups, on ARM's clock. A role assigned meanwhile shows within this time.
pub const STANDING_FRESH_MINUTES: i64 = 15;

/// The last answer of [`Engine::standing_jit`]: for whom (object id), at which groups (lower
/// case, sorted), when, and what it was.
type StandingAnswer = (String, Vec<String>, DateTime<Utc>, bool);

#[derive(Debug, Default)]
struct Standing(tokio::sync::Mutex<Option<StandingAnswer>>);

pub struct Engine {
    pub config: Config,
    pub session: Arc<Session>,
    pub arm: Arm,
    pub state_dir: PathBuf,
    pub journal: Journal,
    events: broadcast::Sender<EngineEvent>,
    /// Claims a refused activation asked for (MFA, an authentication context).
    step_up: std::sync::Mutex<Option<String>>,
    /// Whether the policies name the user as an approver, as last read: shared by the
    /// watcher and the tray's snapshot.
    pub approver: crate::approver::Finding,
    standing: Standing,
    /// Microsoft Graph, for PIM for Groups, with a token for [`crate::groups::PERMISSIONS`].
    pub graph: Arm,
    /// Microsoft Graph, for PIM for Entra roles, with a token of its own for
    /// [`crate::directory::PERMISSIONS`]: an organisation that consented to one set and not
    /// the other keeps what it consented to.
    pub graph_roles: Arm,
    groups_refused: elevation::GroupsRefused,
    roles_refused: elevation::GroupsRefused,
}
impl Engine {
    /// The engine on `config`, with its state directory created 0700 (or checked to be the
    /// user's own and private: RELIABILITY #24). There is no relative fallback: without a
    /// platform data directory, `storage.state_dir` must say where.
    pub fn new(config: Config) -> Result<Engine, crate::Error> {
        let base = config
            .storage
            .state_dir
            .clone()
            .or_else(|| dirs::data_local_dir().map(|d| d.join("jumpgate")))
            .ok_or_else(|| {
                crate::Error::State(
                    "there is no data directory to keep Jumpgate's state in (is HOME set?); set storage.state_dir in the configuration".into(),
                )
            })?;
        // Another tenant's state is its own (its requests, watcher and journal), in
        // `tenants/NAME`; each folder on the way is made private in turn.
        let mut folders = vec![base.clone()];
        if let Some(name) = &config.tenant {
            folders.push(base.join("tenants"));
            folders.push(base.join("tenants").join(name));
        }
        for dir in &folders {
            crate::private::ensure_dir(dir).map_err(|e| {
                crate::Error::State(match e.kind() {
                    std::io::ErrorKind::PermissionDenied => e.to_string(),
                    _ => format!(
                        "cannot use the state directory {}: {e}. Nothing was sent: make it writable by you, free some space, or set storage.state_dir, then try again.",
                        dir.display()
                    ),
                })
            })?;
        }
        let state_dir = folders.pop().unwrap_or(base);
        // The journal opens its file with the default mode; created here first, it is 0600.
        drop(
            crate::private::open_append(&state_dir.join("audit.jsonl")).map_err(|e| {
                crate::Error::State(format!(
                    "cannot use the state directory {}: {e}. Nothing was sent: make it writable by you, free some space, or set storage.state_dir, then try again.",
                    state_dir.display()
                ))
            })?,
        );
        let fallback = config
            .storage
            .allow_file_fallback
            .then(|| state_dir.join("tokens.json"));
        // `[azure]`'s sign-in is keyed by its tenant id, as it always was; another tenant's
        // by its name too, so two entries for one organisation (another account, another
        // app) never share, overwrite or delete each other's sign-in.
        let key = match &config.tenant {
            Some(name) => format!("{}@{name}", config.azure.tenant_id),
            None => config.azure.tenant_id.clone(),
        };
        let store = TokenStore::new(&config.storage.keyring_service, &key, fallback);
        let authority = Authority::from_config(&config);
        let session = Arc::new(
            Session::new(authority, store).with_renewal_lock(state_dir.join("signin.lock")),
        );
        let (events, _) = broadcast::channel(256);
        let notify = events.clone();
        let arm = Arm::new(config.arm(), session.clone()).with_notify(Arc::new(move |m: &str| {
            let _ = notify.send(EngineEvent::Progress {
                message: m.to_string(),
            });
        }));
        session.follow_clock(arm.clock.clone());
        let graph_for = |permissions: &[&str]| {
            let scope = permissions
                .iter()
                .map(|p| config.graph_scope(p))
                .collect::<Vec<_>>()
                .join(" ");
            Arm::graph(
                config.graph(),
                Arc::new(crate::session::GraphTokens {
                    session: session.clone(),
                    scope,
                }),
                &arm,
            )
        };
        let graph = graph_for(&crate::groups::PERMISSIONS);
        let graph_roles = graph_for(&crate::directory::PERMISSIONS);
        Ok(Engine {
            graph,
            graph_roles,
            groups_refused: elevation::GroupsRefused::default(),
            roles_refused: elevation::GroupsRefused::default(),
            journal: Journal::new(&state_dir),
            config,
            session,
            arm,
            state_dir,
            events,
            step_up: std::sync::Mutex::new(None),
            approver: crate::approver::Finding::default(),
            standing: Standing::default(),
        })
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: EngineEvent) {
        let _ = self.events.send(event);
    }

    /// Events published that some subscriber has not received yet.
    pub fn backlog(&self) -> usize {
        self.events.len()
    }

    /// Keeps a new sign-in: in the keychain, in place of what this process held in memory,
    /// and in the journal, so a watcher in another process (the tray's, after `jumpgate
    /// signin` in a terminal) reads it at once instead of going on with the one before.
    pub async fn keep_sign_in(&self, tokens: &crate::tokens::TokenSet) -> Result<(), crate::Error> {
        self.session.store().save(tokens).await?;
        self.session.forget_cached().await;
        let how = match tokens.source {
            crate::tokens::Source::Browser => "in the browser",
            crate::tokens::Source::DeviceCode => "with a device code",
            crate::tokens::Source::AzureCli => "through the Azure CLI",
        };
        self.audit(Record {
            who: tokens.account.upn.clone(),
            what: SIGNED_IN.into(),
            outcome: format!("signed in {how}"),
            ..Record::default()
        })
        .await;
        Ok(())
    }

    /// Signs out: forgets the stored sign-in, and writes that the person did so in the
    /// journal, so a watcher (in this process or another) tells nobody to sign in again.
    pub async fn sign_out(&self) -> Result<(), crate::Error> {
        let who = self
            .session
            .current()
            .await
            .ok()
            .flatten()
            .map(|t| t.account.upn);
        self.session.sign_out().await?;
        if let Some(who) = who {
            self.audit(Record {
                who,
                what: SIGNED_OUT.into(),
                outcome: "signed out by the user".into(),
                ..Record::default()
            })
            .await;
        }
        Ok(())
    }

    /// Records what happened in the audit journal, as the signed-in user unless `who` is set.
    /// A journal that cannot be written is reported, not fatal: the operation already happened.
    pub async fn audit(&self, mut record: Record) {
        if record.who.is_empty() {
            record.who = self
                .session
                .current()
                .await
                .ok()
                .flatten()
                .map(|t| t.account.upn)
                .unwrap_or_default();
        }
        if let Err(e) = self.journal.append(record, self.arm.clock.now()) {
            self.progress(&format!("could not write the audit journal: {e}"));
        }
    }

    /// A line of progress, for whoever shows the engine's (front ends add theirs in order).
    pub fn progress(&self, message: &str) {
        self.publish(EngineEvent::Progress {
            message: message.to_string(),
        });
    }

    pub fn authority(&self) -> Authority {
        Authority::from_config(&self.config)
    }

    /// The signed-in account, or a clear "sign in first".
    pub async fn account(&self) -> Result<Account, Failure> {
        match self.session.current().await? {
            Some(t) => Ok(t.account),
            None => Err(Failure::new(
                Kind::SignIn,
                "sign_in_required",
                "You are not signed in: run jumpgate signin.",
            )),
        }
    }

    fn remember_step_up(&self, claims: &str) {
        *self.step_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(claims.to_string());
    }

    /// The claims the last refused activation asked for, which the next interactive sign-in
    /// should carry. Taking them clears them.
    pub fn take_step_up(&self) -> Option<String> {
        self.step_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub async fn detect_ip(&self) -> Result<crate::ip::Detected, Failure> {
        Ok(crate::ip::detect(
            &self.config.network.ip_echo_urls,
            self.config.network.allow_loopback_ip,
        )
        .await?)
    }
}
