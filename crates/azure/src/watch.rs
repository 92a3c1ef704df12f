//! The watcher: the engine's background loop. It notices decisions on the user's requests,
//! requests waiting for the user's decision, expiry (with reminders before it), public-IP
//! changes while a port is open, and a sign-in that must be repeated. Each is announced once,
//! across restarts too: what was announced is kept in `watch.json` in the state directory.
//!
//! The approvals inbox is read every few seconds for approvers: those who say so
//! (`--approver`, `[watch] approver`), those a readable policy names (`approver`, read at the
//! first look and then once a day), those who have decided a request on this machine (noticed
//! when the journal changes), and those a request has waited for.
//!
//! When to look is `jumpgate_core::watch::schedule`, and what is due before expiry is
//! `jumpgate_core::planner::plan`; both are pure. This module does the reading and the
//! announcing. Deadlines are compared in ARM's time (the offset from its `Date` header).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::events::{Access, Elevation, EngineEvent, WatchEvent};
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::phase::RequestPhase;
use jumpgate_core::planner::{self, Deadline, Due};
use jumpgate_core::watch::{schedule, Cadence, Last, Situation};
use serde::{Deserialize, Serialize};

use crate::arm::{self, Request};
use crate::engine::{open_grants, Engine};
use crate::tokens::Account;

/// Announcements older than this are forgotten; nothing they name can come back.
const FORGET_AFTER_DAYS: i64 = 30;

/// What the watcher keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The account this state belongs to (object id).
    account: String,
    /// When the watcher last finished a full look, in ARM's time.
    seen_until: Option<DateTime<Utc>>,
    /// Announcement id → when it was made.
    announced: BTreeMap<String, DateTime<Utc>>,
    /// My requests waiting for a decision, by name.
    pending: BTreeMap<String, Tracked>,
    /// What of mine is open, and when it ends.
    deadlines: Vec<Open>,
    /// A request has waited for this user's decision: poll the inbox quickly.
    approver: bool,
    /// The roles whose policies (those the user can read) name this user as an approver, at
    /// the last look at them: poll the inbox quickly.
    #[serde(default)]
    approves: Vec<String>,
    /// How long the audit journal was (bytes) at the last look that found a sign-in: a
    /// `signed_out` entry after it means the person signed out on purpose.
    #[serde(default)]
    journal_at_sign_in: Option<u64>,
    /// Every eligibility seen for this account (kind, scope and role, lower case); `None`
    /// until the first look, which records them without announcing any. It only grows, so
    /// a read that missed a part (Microsoft Graph refusing, say) never makes its return look
    /// new.
    #[serde(default)]
    eligible: Option<BTreeSet<String>>,
    /// Group memberships have been read for `eligible` (Graph answered once).
    #[serde(default)]
    groups_read: bool,
    /// Entra roles have been read for `eligible` (Graph answered once).
    #[serde(default)]
    entra_read: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tracked {
    /// A role's or a group membership's request (a state from before groups is a role's).
    #[serde(default)]
    kind: Elevation,
    scope: String,
    role: String,
    status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    access: Access,
    end: DateTime<Utc>,
    /// For a port: the source address it is open for.
    #[serde(default)]
    source: Option<String>,
}

pub struct Watcher<'e> {
    engine: &'e Engine,
    path: PathBuf,
    saved: Saved,
    cadence: Cadence,
    last: Last,
    signed_in: bool,
    /// The stored sign-in ARM refused (a claims challenge, say): not tried again until the
    /// user signs in anew, so a dead sign-in never becomes a loop of refused calls.
    refused_sign_in: Option<u64>,
    /// Why the sign-in failed during a look that found it gone: announced at the next look,
    /// unless the journal says the person signed out meanwhile.
    lost_sign_in: Option<String>,
    /// The `signed_out` entry last found in a journal whose whole chain verified, by hash:
    /// the journal is read in full once per such entry, not at every look.
    verified_sign_out: Option<String>,
    approver_flag: bool,
    /// This account has decided a request on this machine (`approver::has_decided`), as read
    /// for `decided_for` when the journal last changed.
    decided: bool,
    decided_for: String,
    /// The progress line saying why the inbox is read quickly has been printed.
    told_fast: bool,
    /// When this watcher started: on a first run, decisions on requests made since then are
    /// announced (and older ones are not).
    started: DateTime<Utc>,
    journal_len: Option<u64>,
    /// Held while the watcher runs: one watcher per state directory.
    _lock: File,
}

/// Where a watcher reports what it announces. Called before the announcement is saved, so a
/// crash in between repeats it rather than losing it.
pub type Sink<'a> = &'a mut (dyn FnMut(&WatchEvent) + Send);

impl<'e> Watcher<'e> {
    /// Takes the state directory's watcher lock and loads what was announced before.
    pub fn open(engine: &'e Engine, approver: bool) -> Result<Watcher<'e>, Failure> {
        let dir = &engine.state_dir;
        let io = |e: std::io::Error| {
            Failure::new(
                Kind::Other,
                "state_dir",
                format!("cannot use the state directory {}: {e}", dir.display()),
            )
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = crate::private::open_lock(&dir.join("watch.lock")).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Failure::new(
                    Kind::Conflict,
                    "already_watching",
                    format!(
                        "Another watcher (the tray app, or jumpgate watch) is already running for {}: its announcements are the same, so use that one or stop it first.",
                        dir.display()
                    ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let path = dir.join("watch.json");
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    // Starting over repeats at most the reminders still due; keep the
                    // unreadable file for inspection.
                    let aside = dir.join("watch.json.unreadable");
                    let _ = std::fs::rename(&path, &aside);
                    engine.publish(EngineEvent::Progress {
                        message: format!(
                            "the watcher's state was unreadable ({e}); it was moved to {} and the watcher starts afresh",
                            aside.display()
                        ),
                    });
                    Saved::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(io(e)),
        };
        Ok(Watcher {
            cadence: Cadence::from_config(&engine.config.watch),
            approver_flag: approver || engine.config.watch.approver,
            decided: false,
            decided_for: String::new(),
            told_fast: false,
            started: engine.arm.clock.now(),
            engine,
            path,
            saved,
            last: Last::default(),
            signed_in: true,
            refused_sign_in: None,
            lost_sign_in: None,
            verified_sign_out: None,
            journal_len: None,
            _lock: lock,
        })
    }

    /// Watches until the task is dropped. Failures to reach Azure are reported as progress
    /// and retried at the next look; they never end the loop.
    pub async fn run(&mut self, sink: Sink<'_>) {
        let mut slept = Duration::zero();
        loop {
            let sleep = self.step(Utc::now(), slept, sink).await;
            let started = Instant::now();
            tokio::time::sleep(sleep).await;
            slept = Duration::from_std(started.elapsed()).unwrap_or(Duration::zero());
        }
    }

    /// One wake of the loop at wall-clock `now`, after sleeping `slept`: looks at what is
    /// due, announces what changed, and says how long to sleep.
    pub async fn step(
        &mut self,
        now: DateTime<Utc>,
        slept: Duration,
        sink: Sink<'_>,
    ) -> StdDuration {
        let began = Instant::now();
        let situation = Situation {
            signed_in: self.signed_in,
            pending: !self.saved.pending.is_empty(),
            approver: self.approver_flag || self.fast_inbox_reason().is_some(),
            open: !self.saved.deadlines.is_empty(),
        };
        let (mut work, wake) = schedule(now, slept, &self.last, &situation, &self.cadence);
        if work.resumed {
            self.progress("the clock jumped (resume from suspend?): looking at everything now");
        }
        // Another jumpgate process on this machine wrote to the journal: it requested,
        // opened or decided something, so look now instead of at the next refresh. The size
        // is taken before the reads: an entry written while they run is seen next time. Our
        // own entries (announcements, which are rare) cost one extra look each.
        let len = self.engine.journal.size();
        let journal_changed = self.journal_len.is_some_and(|l| l != len);
        if journal_changed {
            // It may have signed out (`jumpgate signout`): the stored sign-in is read again,
            // so a sign-in deleted elsewhere is not used on from memory.
            self.engine.session.forget_cached().await;
        }
        if journal_changed && self.signed_in {
            work.refresh = true;
        }
        self.journal_len = Some(len);
        let outcome = async {
            if work.refresh {
                // Marked before the reads, so a failure waits for the next turn instead of
                // being retried on every wake.
                self.last.refresh = Some(now);
                self.last.pending = Some(now);
                self.last.approvals = Some(now);
                self.refresh(sink).await?;
            } else {
                if work.pending {
                    self.last.pending = Some(now);
                    if self.poll_pending(sink).await? {
                        // A decision: read roles and ports at once for the new deadline.
                        self.refresh(sink).await?;
                        self.last.refresh = Some(now);
                    }
                }
                if work.approvals {
                    self.last.approvals = Some(now);
                    self.poll_approvals(sink).await?;
                }
            }
            if work.ip && self.signed_in {
                self.last.ip = Some(now);
                self.check_ip(sink).await;
            }
            if work.approver_check {
                self.check_approver(now).await?;
            }
            if work.eligibility {
                self.check_eligibility(now, sink).await?;
            }
            Ok::<(), Failure>(())
        }
        .await;
        if let Err(f) = outcome {
            let gone = f.explanation.kind == Kind::SignIn
                && !self.saved.account.is_empty()
                && matches!(self.engine.session.current().await, Ok(None));
            if gone {
                // Deleted while this look ran: by a refused renewal, or by a sign-out whose
                // journal entry may not be written yet. The next look, soon, tells which.
                self.signed_in = false;
                self.lost_sign_in = Some(f.explanation.message);
            } else if f.explanation.kind == Kind::SignIn {
                self.signed_out(&f.explanation.message, sink).await;
            } else {
                self.progress(&format!(
                    "{}; trying again at the next look",
                    f.explanation.message
                ));
            }
        }
        // A decision made on this machine (by this process or another) is written down before
        // its journal entry: read it when the journal changed, or the account did.
        if journal_changed || self.decided_for != self.saved.account {
            self.decided_for = self.saved.account.clone();
            self.decided = crate::approver::has_decided(
                &self.engine.state_dir,
                &self.saved.account,
                self.engine.arm.clock.now(),
            );
        }
        if !self.told_fast && !self.approver_flag && self.signed_in {
            if let Some(why) = self.fast_inbox_reason() {
                self.told_fast = true;
                self.progress(&format!(
                    "{why}: checking your approvals every {}",
                    every(self.cadence.approvals)
                ));
            }
        }
        let next_deadline = self.deadlines(sink).await;
        // Awake until now: a slow look (ARM retrying) is not a jump of the clock.
        self.last.awake =
            Some(now + Duration::from_std(began.elapsed()).unwrap_or(Duration::zero()));
        // The planner's wake is in ARM's time: convert it through the same offset. Both
        // wakes count from the start of this step.
        let server_now = self.engine.arm.clock.now();
        let spent = Duration::from_std(began.elapsed()).unwrap_or(Duration::zero());
        let until = (wake - now - spent).min(next_deadline - server_now);
        until
            .to_std()
            .unwrap_or(StdDuration::ZERO)
            .max(StdDuration::from_millis(100))
    }

    /// Why this user's inbox is read on its own fast cadence without `--approver`: a policy
    /// names them, they have decided before, or a request has waited for them.
    fn fast_inbox_reason(&self) -> Option<String> {
        if !self.saved.approves.is_empty() {
            const SHOWN: usize = 3;
            let mut names: Vec<String> = self
                .saved
                .approves
                .iter()
                .take(SHOWN)
                .map(|r| jumpgate_core::text::line(r).into_owned())
                .collect();
            if self.saved.approves.len() > SHOWN {
                names.push(format!("{} more", self.saved.approves.len() - SHOWN));
            }
            return Some(format!("you approve requests for {}", names.join(", ")));
        }
        if self.decided {
            return Some("you have decided requests on this machine before".into());
        }
        self.saved
            .approver
            .then(|| "a request has waited for your decision".into())
    }

    /// Announces each role (at a scope) and group membership the user may now activate and
    /// could not at earlier looks. The first look for an account only records the roles, and
    /// the first look that reads group memberships (Graph may refuse, or be down) records
    /// them; the set kept only grows.
    async fn check_eligibility(
        &mut self,
        now: DateTime<Utc>,
        sink: Sink<'_>,
    ) -> Result<(), Failure> {
        if !self.signed_in || self.saved.account.is_empty() {
            // Read once someone is signed in.
            self.last.eligibility = None;
            return Ok(());
        }
        self.last.eligibility = Some(now);
        // A sign-in of another account taken up since the look that set the account: its
        // eligibilities are read once the watcher has switched to it.
        match self.engine.account().await {
            Ok(a) if a.oid == self.saved.account => {}
            Ok(_) => {
                self.last.eligibility = None;
                return Ok(());
            }
            Err(f) => return Err(f),
        }
        let (roles, groups, entra) = self.engine.eligibilities_known().await?;
        let key = |e: &arm::Eligible| {
            format!(
                "{}:{}:{}",
                e.kind.noun(),
                e.scope.to_ascii_lowercase(),
                arm::leaf(&e.role_definition_id).to_ascii_lowercase()
            )
        };
        let roles_first = self.saved.eligible.is_none();
        let groups_first = !self.saved.groups_read;
        let entra_first = !self.saved.entra_read;
        let known = self.saved.eligible.get_or_insert_with(BTreeSet::new);
        let mut new = Vec::new();
        for e in roles {
            if known.insert(key(&e)) && !roles_first {
                new.push((key(&e), e));
            }
        }
        if let Some(groups) = groups {
            for e in groups {
                if known.insert(key(&e)) && !groups_first {
                    new.push((key(&e), e));
                }
            }
            self.saved.groups_read = true;
        }
        if let Some(entra) = entra {
            for e in entra {
                if known.insert(key(&e)) && !entra_first {
                    new.push((key(&e), e));
                }
            }
            self.saved.entra_read = true;
        }
        for (key, e) in new {
            let event = WatchEvent::EligibilityAdded {
                kind: e.kind,
                role: e.role,
                scope: e.scope_name,
            };
            // Saved with the announcement: a crash before it repeats it, never loses it.
            self.announce(format!("eligible:{key}"), event, None, sink)
                .await;
        }
        self.save();
        Ok(())
    }

    /// Reads the policies the user can see for their name among the approvers
    /// (`approver::approved_roles`), and keeps what it finds. Not needed with `--approver`. A
    /// failure other than the sign-in is said once and tried again in an hour.
    async fn check_approver(&mut self, now: DateTime<Utc>) -> Result<(), Failure> {
        if self.approver_flag {
            self.last.approver_check = Some(now);
            return Ok(());
        }
        if !self.signed_in || self.saved.account.is_empty() {
            // Checked once someone is signed in.
            self.last.approver_check = None;
            return Ok(());
        }
        self.last.approver_check = Some(now);
        // Shared with the tray's snapshot: a look either made recently is not repeated.
        let found = self
            .engine
            .approver
            .roles(
                &self.engine.arm,
                &self.saved.account,
                self.engine.arm.clock.now(),
                self.cadence.approver_check,
            )
            .await;
        match found {
            // Another look (the tray's snapshot) failed within the hour: try after it.
            Ok(None) => {
                self.last.approver_check =
                    Some(now - self.cadence.approver_check + Duration::hours(1));
                Ok(())
            }
            Ok(Some(roles)) => {
                if roles != self.saved.approves {
                    self.saved.approves = roles;
                    self.save();
                }
                Ok(())
            }
            Err(e) => {
                let f = Failure::from(e);
                if f.explanation.kind == Kind::SignIn {
                    return Err(f);
                }
                self.progress(&format!(
                    "cannot read the role policies to find out whether you approve requests ({}); trying again in an hour",
                    f.explanation.message.trim_end_matches('.')
                ));
                self.last.approver_check =
                    Some(now - self.cadence.approver_check + Duration::hours(1));
                Ok(())
            }
        }
    }

    fn progress(&self, message: &str) {
        self.engine.publish(EngineEvent::Progress {
            message: message.to_string(),
        });
    }

    /// Announces an event unless it already was; records it in the journal and saves.
    async fn announce(
        &mut self,
        id: String,
        event: WatchEvent,
        record: Option<Record>,
        sink: Sink<'_>,
    ) {
        if self.saved.announced.contains_key(&id) {
            return;
        }
        sink(&event);
        self.engine.publish(EngineEvent::Watch(event));
        self.saved.announced.insert(id, self.engine.arm.clock.now());
        if let Some(r) = record {
            self.engine.audit(r).await;
        }
        self.save();
    }

    /// Writes the state through a temporary file and a rename, so a crash leaves the old
    /// state or the new one, never half of one.
    fn save(&mut self) {
        let now = self.engine.arm.clock.now();
        self.saved
            .announced
            .retain(|_, at| now - *at < Duration::days(FORGET_AFTER_DAYS));
        let result = serde_json::to_vec_pretty(&self.saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::private::write_atomic(&self.path, &bytes));
        if let Err(e) = result {
            self.progress(&format!(
                "cannot save the watcher's state to {}: {e}; announcements may repeat after a restart",
                self.path.display()
            ));
        }
    }

    async fn signed_out(&mut self, reason: &str, sink: Sink<'_>) {
        self.signed_in = false;
        if let Ok(Some(t)) = self.engine.session.current().await {
            self.refused_sign_in = Some(fingerprint(&t.access_token));
        }
        let id = format!("signed_out:{}", self.saved.account);
        self.announce(
            id,
            WatchEvent::SignedOut {
                reason: reason.trim_end_matches('.').to_string(),
            },
            None,
            sink,
        )
        .await;
    }

    /// Whether the last sign-in or sign-out the audit journal has had appended since the last
    /// look that found a sign-in is a sign-out ([`crate::engine::Engine::sign_out`]). What
    /// was appended since is read first (this runs at every look while signed out); a
    /// sign-out found there counts only once the whole journal verifies with it in its
    /// chain, so a line written into the journal by anyone else cannot silence the
    /// "signed out" notice.
    fn signed_out_on_purpose(&mut self) -> bool {
        use crate::engine::{SIGNED_IN, SIGNED_OUT};
        let appended = self
            .engine
            .journal
            .appended_since(self.saved.journal_at_sign_in.unwrap_or(0));
        let Some(last) = appended
            .iter()
            .rfind(|e| e.record.what == SIGNED_OUT || e.record.what == SIGNED_IN)
            .filter(|e| e.record.what == SIGNED_OUT)
        else {
            return false;
        };
        if self.verified_sign_out.as_deref() == Some(last.entry_hash.as_str()) {
            return true;
        }
        let chained = match self.engine.journal.check() {
            Ok(v) => v.entries.iter().any(|e| {
                e.seq == last.seq && e.entry_hash == last.entry_hash && e.record.what == SIGNED_OUT
            }),
            Err(e) => {
                self.progress(&format!(
                    "the audit journal does not verify ({e}): a sign-out in it is not taken as yours"
                ));
                false
            }
        };
        if chained {
            self.verified_sign_out = Some(last.entry_hash.clone());
        }
        chained
    }

    /// Reads everything: my requests, my open roles and ports, and my approvals inbox.
    async fn refresh(&mut self, sink: Sink<'_>) -> Result<(), Failure> {
        let account = match self.engine.session.current().await? {
            Some(t) if self.refused_sign_in == Some(fingerprint(&t.access_token)) => {
                return Ok(());
            }
            Some(t) => t.account,
            // Never signed in here: nothing to repeat, so nothing to announce.
            None if self.saved.account.is_empty() => {
                self.signed_in = false;
                return Ok(());
            }
            // Signed out on purpose (in the app, or with `jumpgate signout`) since the last
            // look that found a sign-in: they know, so nothing is announced.
            None if self.signed_out_on_purpose() => {
                if self.signed_in || self.lost_sign_in.is_some() {
                    self.progress("signed out: watching again once you sign in");
                }
                self.signed_in = false;
                self.lost_sign_in = None;
                return Ok(());
            }
            None => {
                let reason = self
                    .lost_sign_in
                    .take()
                    .unwrap_or_else(|| "You are signed out".into());
                self.signed_out(&reason, sink).await;
                return Ok(());
            }
        };
        self.refused_sign_in = None;
        if account.oid != self.saved.account {
            // Another account (or the first run): start afresh, announcing nothing old, and
            // find out again whether this one approves requests.
            self.saved = Saved {
                account: account.oid.clone(),
                ..Saved::default()
            };
            self.last.approver_check = None;
            self.last.eligibility = None;
        }
        self.saved.journal_at_sign_in = Some(self.engine.journal.size());
        self.lost_sign_in = None;
        if !self.signed_in {
            self.progress(&format!("signed in as {}: watching again", account.upn));
        }
        self.signed_in = true;
        let seen_until = self.saved.seen_until.or(Some(self.started));
        let requests = self.engine.my_requests().await?;
        let mut listed = BTreeSet::new();
        for r in requests.into_iter().filter(needs_decision) {
            listed.insert(r.name.clone());
            if RequestPhase::of(&r.status) == RequestPhase::Pending {
                self.saved.pending.insert(
                    r.name.clone(),
                    Tracked {
                        kind: r.kind,
                        scope: r.scope.clone(),
                        role: r.role.clone(),
                        status: r.status.clone(),
                    },
                );
                continue;
            }
            let tracked = self.saved.pending.remove(&r.name).is_some();
            // Decided while nobody watched: announce it if it was made since the last look.
            let recent = seen_until
                .is_some_and(|t| r.created.is_some_and(|c| c >= t - Duration::minutes(1)));
            if tracked || recent {
                self.decided(&r, sink).await;
            }
        }
        self.saved.pending.retain(|name, _| listed.contains(name));
        for (open, reason, code) in self.read_deadlines(&account).await? {
            self.ended_early(open, reason, code, sink).await;
        }
        self.poll_approvals(sink).await?;
        self.announced_signed_in();
        self.saved.seen_until = Some(self.engine.arm.clock.now());
        self.save();
        Ok(())
    }

    fn announced_signed_in(&mut self) {
        let id = format!("signed_out:{}", self.saved.account);
        self.saved.announced.remove(&id);
    }

    /// Reads each request still waiting for a decision. True when one was decided.
    async fn poll_pending(&mut self, sink: Sink<'_>) -> Result<bool, Failure> {
        let mut decided = false;
        let names: Vec<(String, Tracked)> = self
            .saved
            .pending
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        for (name, tracked) in names {
            let r = self
                .engine
                .request(tracked.kind, &tracked.scope, &name)
                .await?;
            if RequestPhase::of(&r.status) == RequestPhase::Pending {
                if r.status != tracked.status {
                    self.engine.publish(EngineEvent::RequestStatus {
                        request: name.clone(),
                        role: r.role.clone(),
                        status: r.status.clone(),
                    });
                    if let Some(t) = self.saved.pending.get_mut(&name) {
                        t.status = r.status.clone();
                    }
                }
                continue;
            }
            self.saved.pending.remove(&name);
            self.decided(&r, sink).await;
            decided = true;
        }
        Ok(decided)
    }

    /// Announces the decision on one of my requests, with the approver's justification.
    async fn decided(&mut self, r: &Request, sink: Sink<'_>) {
        let phase = RequestPhase::of(&r.status);
        if !matches!(phase, RequestPhase::Approved | RequestPhase::Denied) {
            self.save();
            return;
        }
        let id = format!("decided:{}", r.name);
        if self.saved.announced.contains_key(&id) {
            return;
        }
        let d = self.engine.decision(r).await;
        let approver = d.as_ref().and_then(|d| d.approver.clone());
        let justification = d.as_ref().and_then(|d| d.justification.clone());
        let approved = phase == RequestPhase::Approved;
        let event = if approved {
            WatchEvent::RequestApproved {
                request: r.name.clone(),
                role: r.role.clone(),
                scope: r.scope.clone(),
                approver: approver.clone(),
                justification: justification.clone(),
            }
        } else {
            WatchEvent::RequestDenied {
                request: r.name.clone(),
                role: r.role.clone(),
                scope: r.scope.clone(),
                approver: approver.clone(),
                justification: justification.clone(),
            }
        };
        let record = Record {
            what: if approved {
                "request_approved"
            } else {
                "request_denied"
            }
            .into(),
            role: Some(r.role.clone()),
            duration: r.duration.clone(),
            justification,
            outcome: format!(
                "{}{}",
                r.status,
                approver.map(|a| format!(" by {a}")).unwrap_or_default()
            ),
            ..Record::default()
        };
        self.announce(id, event, Some(record), sink).await;
    }

    /// Reads the approvals inbox (one read); the requests are joined only for new ones.
    async fn poll_approvals(&mut self, sink: Sink<'_>) -> Result<(), Failure> {
        let inbox = self.engine.inbox().await?;
        if !inbox.is_empty() && !self.saved.approver {
            self.saved.approver = true;
            self.save();
        }
        let new = inbox
            .iter()
            .any(|(_, id, _)| !self.saved.announced.contains_key(&format!("approval:{id}")));
        if !new {
            return Ok(());
        }
        for p in self.engine.approvals().await? {
            let r = &p.request;
            let event = WatchEvent::ApprovalWaiting {
                request: r.name.clone(),
                approval: p.approval_id.clone(),
                requester: r.principal_name.clone(),
                role: r.role.clone(),
                scope: r.scope.clone(),
                justification: r.justification.clone(),
                duration: r.duration.clone(),
                ticket: r.ticket.clone(),
            };
            self.announce(format!("approval:{}", p.approval_id), event, None, sink)
                .await;
        }
        Ok(())
    }

    /// Reads my active roles and open ports, and merges them with the deadlines kept: a
    /// deadline that has passed stays until "expired" is announced. Tracked access that is
    /// gone before its end ended early: it is returned, with why, to be announced. A port on
    /// a VM whose policy could not be read is kept as it was: unseen is not ended.
    async fn read_deadlines(
        &mut self,
        me: &Account,
    ) -> Result<Vec<(Open, String, Option<String>)>, Failure> {
        let now = self.engine.arm.clock.now();
        let mut fresh: Vec<Open> = self
            .engine
            .active()
            .await?
            .into_iter()
            .filter(|a| a.assignment_type == "Activated" && a.principal_type != "Group")
            .filter_map(|a| {
                Some(Open {
                    end: a.end?,
                    access: Access::Role {
                        role: a.role,
                        scope: a.scope,
                    },
                    source: None,
                })
            })
            .collect();
        let targets = self.engine.targets().await?;
        for target in &targets {
            for g in open_grants(target, now) {
                if !me.is(&g.requestor) {
                    continue;
                }
                if let Some(end) = g.end {
                    fresh.push(Open {
                        access: Access::Port {
                            vm: target.vm.clone(),
                            vm_id: target.vm_id.clone(),
                            port: g.port,
                        },
                        end,
                        source: Some(g.source.clone()),
                    });
                }
            }
        }
        let keys: BTreeSet<String> = fresh.iter().map(|o| o.access.key()).collect();
        let mut kept = Vec::new();
        let mut early = Vec::new();
        let mut removals: Option<Vec<Request>> = None;
        for o in std::mem::take(&mut self.saved.deadlines) {
            if keys.contains(&o.access.key()) {
                continue;
            }
            if o.end <= now {
                // Kept until "expired" is announced.
                kept.push(o);
                continue;
            }
            match &o.access {
                Access::Port { vm_id, port, .. } => {
                    let Some(target) = targets.iter().find(|t| t.vm_id.eq_ignore_ascii_case(vm_id))
                    else {
                        kept.push(o);
                        continue;
                    };
                    let (reason, code) = port_ended(target, *port, me, o.end);
                    early.push((o, reason, code));
                }
                Access::Role { role, scope } => {
                    if removals.is_none() {
                        let (roles, groups) = tokio::join!(
                            arm::list_requests(&self.engine.arm, "asTarget()"),
                            self.engine.my_requests()
                        );
                        removals = Some(
                            roles?
                                .into_iter()
                                .chain(groups?.into_iter().filter(|r| r.kind != Elevation::Role))
                                .collect(),
                        );
                    }
                    let (reason, code) =
                        role_ended(removals.as_deref().unwrap_or_default(), role, scope);
                    early.push((o, reason, code));
                }
            }
        }
        self.saved.deadlines = kept.into_iter().chain(fresh).collect();
        Ok(early)
    }

    /// Announces access that ended before its end, once.
    async fn ended_early(&mut self, o: Open, reason: String, code: Option<String>, sink: Sink<'_>) {
        let (vm, port, role) = match &o.access {
            Access::Port { vm_id, port, .. } => (Some(vm_id.clone()), Some(*port), None),
            Access::Role { role, .. } => (None, None, Some(role.clone())),
        };
        let id = format!("{}@{}-ended", o.access.key(), o.end.timestamp());
        let record = Record {
            what: "ended_early".into(),
            vm,
            port,
            role,
            source_ip: o.source.clone(),
            outcome: format!(
                "{reason}{} (granted until {} UTC)",
                code.as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default(),
                o.end.format("%Y-%m-%d %H:%M:%S")
            ),
            ..Record::default()
        };
        let event = WatchEvent::EndedEarly {
            access: o.access,
            end: o.end,
            reason,
            code,
        };
        self.announce(id, event, Some(record), sink).await;
    }

    /// Announces the reminders and expiries due now (in ARM's time); returns when the next
    /// one is, in ARM's time.
    async fn deadlines(&mut self, sink: Sink<'_>) -> DateTime<Utc> {
        let now = self.engine.arm.clock.now();
        let list: Vec<Deadline> = self
            .saved
            .deadlines
            .iter()
            .map(|o| Deadline {
                key: o.access.key(),
                end: o.end,
            })
            .collect();
        let announced: BTreeSet<String> = self.saved.announced.keys().cloned().collect();
        let (due, wake) = planner::plan(
            now,
            &list,
            &self.engine.config.reminders.lead_minutes,
            &announced,
        );
        for d in due {
            let (key, end) = match &d {
                Due::Reminder { key, end, .. } | Due::Expired { key, end } => (key.clone(), *end),
            };
            let Some(open) = self
                .saved
                .deadlines
                .iter()
                .find(|o| o.access.key() == key)
                .cloned()
            else {
                continue;
            };
            let (vm, port, role) = match &open.access {
                Access::Port { vm, port, .. } => (Some(vm.clone()), Some(*port), None),
                Access::Role { role, .. } => (None, None, Some(role.clone())),
            };
            let (event, what, outcome) = match &d {
                Due::Reminder { lead_minutes, .. } => (
                    WatchEvent::ExpiryReminder {
                        access: open.access.clone(),
                        lead_minutes: *lead_minutes,
                        end,
                    },
                    "expiry_reminder",
                    format!("ends in {lead_minutes} minutes"),
                ),
                Due::Expired { .. } => (
                    WatchEvent::Expired {
                        access: open.access.clone(),
                        end,
                    },
                    "expired",
                    "ended".to_string(),
                ),
            };
            let record = Record {
                what: what.into(),
                vm,
                port,
                role,
                source_ip: open.source.clone(),
                outcome: format!("{outcome} ({} UTC)", end.format("%Y-%m-%d %H:%M:%S")),
                ..Record::default()
            };
            self.announce(d.id(), event, Some(record), sink).await;
            if matches!(d, Due::Expired { .. }) {
                self.saved.deadlines.retain(|o| o.access.key() != key);
                self.save();
            }
        }
        wake
    }

    /// Checks the public IP against the source of each open port.
    async fn check_ip(&mut self, sink: Sink<'_>) {
        let ports: Vec<Open> = self
            .saved
            .deadlines
            .iter()
            .filter(|o| matches!(o.access, Access::Port { .. }) && o.source.is_some())
            .cloned()
            .collect();
        if ports.is_empty() {
            return;
        }
        let ip = match self.engine.detect_ip().await {
            Ok(d) => d.ip.to_string(),
            Err(f) => {
                self.progress(&format!(
                    "cannot check the public IP: {}",
                    f.explanation.message
                ));
                return;
            }
        };
        for o in ports {
            let (Access::Port { vm, vm_id, port }, Some(source)) = (&o.access, &o.source) else {
                continue;
            };
            if jumpgate_core::ip::source_admits(source, &ip) {
                continue;
            }
            let event = WatchEvent::IpChanged {
                vm: vm.clone(),
                vm_id: vm_id.clone(),
                port: *port,
                old: source.clone(),
                new: ip.clone(),
            };
            let record = Record {
                what: "ip_changed".into(),
                vm: Some(vm_id.clone()),
                port: Some(*port),
                source_ip: Some(ip.clone()),
                outcome: format!("open for {source}, address now {ip}"),
                ..Record::default()
            };
            let id = format!(
                "ip:{}:{port}:{}:{ip}",
                vm_id.to_ascii_lowercase(),
                o.end.timestamp()
            );
            self.announce(id, event, Some(record), sink).await;
        }
    }
}

/// Resolves on Ctrl-C, SIGTERM (a logout, `systemctl --user stop`) or SIGHUP (the terminal
/// closing): each is a request to stop cleanly, and `watch` and the tray treat them alike
/// (RELIABILITY #21).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Why my rule for a VM port, granted until `end`, is no longer open, from the policy's
/// history: a newer request (someone else's, or mine) or a revocation, in words, with ARM's
/// `statusReason`.
fn port_ended(
    target: &arm::Target,
    port: u16,
    me: &Account,
    end: DateTime<Utc>,
) -> (String, Option<String>) {
    let rules = arm::grants(target, port);
    let mine = rules
        .iter()
        .rev()
        .find(|g| me.is(&g.requestor) && g.end == Some(end));
    let code = mine
        .map(|g| g.status_reason.clone())
        .filter(|c| !c.is_empty());
    let reason = match code.as_deref() {
        Some("NewerRequestInitiated") => {
            let newer = arm::latest_grant(target, port)
                .map(|g| g.requestor)
                .filter(|r| !r.is_empty() && !me.is(r));
            match newer {
                Some(who) => format!("a newer request from {who} replaced it"),
                None => "a newer request replaced it".into(),
            }
        }
        Some("UserRequested") => "it was revoked on request".into(),
        _ => "it was closed before its end time".into(),
    };
    (reason, code)
}

/// Why my role at `scope` is no longer active before its end, from the requests that target
/// me: the newest removal or deactivation of that role there.
fn role_ended(requests: &[Request], role: &str, scope: &str) -> (String, Option<String>) {
    let removal = requests
        .iter()
        .filter(|r| matches!(r.request_type.as_str(), "AdminRemove" | "SelfDeactivate"))
        .filter(|r| r.role == role && r.scope.eq_ignore_ascii_case(scope))
        .max_by_key(|r| r.created);
    match removal.map(|r| r.request_type.as_str()) {
        Some("AdminRemove") => (
            "an administrator removed it".into(),
            Some("AdminRemove".into()),
        ),
        Some("SelfDeactivate") => ("it was deactivated".into(), Some("SelfDeactivate".into())),
        _ => ("it ended before its end time".into(), None),
    }
}

/// A poll interval as the progress line says it: `4 s`, `1.5 s`.
fn every(d: Duration) -> String {
    let ms = d.num_milliseconds();
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A token's identity, kept in memory only; the token itself is not.
fn fingerprint(token: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    h.finish()
}

/// Requests whose decision is worth announcing: my activations and extensions that need an
/// approver.
fn needs_decision(r: &Request) -> bool {
    matches!(r.request_type.as_str(), "SelfActivate" | "SelfExtend") && r.approval_id.is_some()
}
