//! JIT: the source to ask for, opening a port and waiting until its rule is in force, and
//! where to connect once it is.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jumpgate_core::audit::Record;
use jumpgate_core::duration::to_iso;
use jumpgate_core::explain::{Failure, Kind};
use jumpgate_core::policy::{self};

use super::*;
use crate::arm::{self, Target};

/// The error code of a source range wider than a /24 opened without consent
/// ([`Engine::source_for`]): the tray asks for confirmation on it.
pub const WIDE_SOURCE: &str = "confirm_wide_source";

impl Engine {
    /// Where to connect for a port: the firewall's mapped port when the VM is behind Azure
    /// Firewall, else the VM's public IP.
    pub async fn endpoint(&self, target: &Target, port: u16) -> Result<Endpoint, Failure> {
        let me = self.account().await?;
        if let (Some(fw), Some(mapped)) = (
            &target.firewall_ip,
            arm::latest_grant_where(target, port, |g| me.is(&g.requestor))
                .and_then(|g| g.mapped_port),
        ) {
            return Ok(Endpoint {
                host: fw.clone(),
                port: mapped,
            });
        }
        match arm::public_address(&self.arm, &target.vm_id).await? {
            Some(host) => Ok(Endpoint { host, port }),
            None => Err(Failure::new(
                Kind::NotFound,
                "no_address",
                format!("{} has no public IP address to connect to.", target.vm),
            )),
        }
    }

    /// Opens a port for `source` until `now + duration` (ARM's clock) and confirms the rule is
    /// `Initiated` in the policy's history.
    pub async fn open_port(
        &self,
        target: &Target,
        port: u16,
        duration: Duration,
        source: &str,
        justification: &str,
        what: &str,
    ) -> Result<(Target, arm::Grant), Failure> {
        policy::check_jit(&target.ports, port, duration, source)
            .map_err(|v| Failure::new(Kind::Policy, v.rule, format!("Not sent: {}.", v.message)))?;
        let sent_at = self.arm.clock.now();
        let end = sent_at + duration;
        let me = self.account().await?;
        let ours = |t: &Target| {
            arm::latest_grant_where(t, port, |g| {
                me.is(&g.requestor)
                    && g.source == source
                    && g.start.is_some_and(|s| s >= sent_at - Duration::seconds(5))
            })
        };
        if let Err(e) = arm::initiate(&self.arm, target, port, end, source, justification).await {
            if !matches!(e, crate::Error::Unreachable { .. }) {
                return Err(e.into());
            }
            // Initiate is not idempotent: after a lost answer, read the history first, and send
            // again only when the request never arrived.
            self.progress("the answer to the JIT request was lost; checking whether it arrived");
            let fresh = arm::refresh_target(&self.arm, target).await?;
            if ours(&fresh).is_none() {
                self.progress("it did not arrive; sending it again");
                arm::initiate(&self.arm, target, port, end, source, justification).await?;
            }
        }
        self.confirm_rule(target, port, source, sent_at, duration, justification, what)
            .await
    }

    /// [`Engine::open_port`] for access that has only just been granted: until `fresh_until`,
    /// a 403 `AuthorizationFailed` is ARM's caches lagging behind the new role ("If access was
    /// recently granted, please refresh your credentials"), so a new token is taken and the
    /// request sent again, with progress. After it, the refusal is explained as it is.
    pub async fn open_port_after_grant(
        &self,
        target: &Target,
        port: u16,
        duration: Duration,
        source: &str,
        justification: &str,
        fresh_until: Option<DateTime<Utc>>,
    ) -> Result<(Target, arm::Grant), Failure> {
        let mut wait = Duration::seconds(5);
        loop {
            let opened = self
                .open_port(target, port, duration, source, justification, "port_opened")
                .await;
            match opened {
                Err(f)
                    if f.explanation.code == "AuthorizationFailed"
                        && fresh_until.is_some_and(|t| self.arm.clock.now() + wait < t) =>
                {
                    self.progress(&format!(
                        "JIT refused the request although your access is in effect: Azure's caches lag behind a new grant. Taking a new token and asking again in {}s",
                        wait.num_seconds()
                    ));
                    self.session.force_refresh().await?;
                    tokio::time::sleep(wait.to_std().unwrap_or(StdDuration::from_secs(5))).await;
                    wait = (wait * 2).min(Duration::seconds(30));
                }
                other => return other,
            }
        }
    }

    /// Until when a refused initiate may be ARM's caches lagging: a window after the newest
    /// activation in force began (a role's, or a group membership's).
    pub async fn fresh_grant_until(&self) -> Option<DateTime<Utc>> {
        let newest = self
            .active()
            .await
            .ok()?
            .into_iter()
            .filter(|a| a.assignment_type == "Activated")
            .filter_map(|a| a.start)
            .max()?;
        let until = newest + Duration::seconds(super::connect::FRESH_GRANT_WINDOW_SECS);
        (until > self.arm.clock.now()).then_some(until)
    }

    /// Waits until the JIT request for `source` sent at `sent_at` is in force and records it.
    /// JIT answers at once (202) and applies the rule to the network a little later: the
    /// request shows `Initiating` until then. The wait is on ARM's clock, within a budget.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn confirm_rule(
        &self,
        target: &Target,
        port: u16,
        source: &str,
        sent_at: DateTime<Utc>,
        duration: Duration,
        justification: &str,
        what: &str,
    ) -> Result<(Target, arm::Grant), Failure> {
        let me = self.account().await?;
        let ours = |t: &Target| {
            arm::latest_grant_where(t, port, |g| {
                me.is(&g.requestor)
                    && g.source == source
                    && g.start.is_some_and(|s| s >= sent_at - Duration::seconds(5))
            })
        };
        let mut announced = String::new();
        loop {
            let fresh = arm::refresh_target(&self.arm, target).await?;
            let mine = ours(&fresh);
            if let Some(g) = mine.clone().filter(|g| g.status == "Initiated") {
                self.audit(Record {
                    what: what.into(),
                    vm: Some(fresh.vm_id.clone()),
                    port: Some(port),
                    source_ip: Some(g.source.clone()),
                    duration: Some(to_iso(duration)),
                    justification: Some(justification.to_string()),
                    outcome: g.status.clone(),
                    ..Record::default()
                })
                .await;
                return Ok((fresh, g));
            }
            let status = mine.map(|g| g.status).unwrap_or_default();
            if let phase @ ("Revoked" | "Failed") = status.as_str() {
                return Err(Failure::new(
                    Kind::Other,
                    "jit_not_applied",
                    format!("JIT did not apply the rule ({phase}): try again, or check jumpgate targets."),
                ));
            }
            if status != announced {
                self.progress(&if status.is_empty() {
                    "waiting for JIT to record the request".to_string()
                } else {
                    format!("JIT is applying the rule ({status})")
                });
                announced = status;
            }
            if self.arm.clock.now() - sent_at > Duration::seconds(JIT_APPLY_BUDGET_SECS) {
                return Err(Failure::timeout(format!("JIT accepted the request but the rule was not in force after {JIT_APPLY_BUDGET_SECS}s: check jumpgate targets, and try again.")));
            }
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
    }

    /// When the user's own request for this port and source is already in force or being
    /// applied, with about the time asked for left, its start time: it came from an earlier
    /// run (stopped before it could confirm), and sending another would duplicate it.
    pub(super) async fn reusable_grant(
        &self,
        target: &Target,
        port: u16,
        source: &str,
        me: &Account,
        duration: Duration,
    ) -> Result<Option<DateTime<Utc>>, Failure> {
        let fresh = arm::refresh_target(&self.arm, target).await?;
        let now = self.arm.clock.now();
        Ok(
            arm::latest_grant_where(&fresh, port, |g| me.is(&g.requestor) && g.source == source)
                .filter(|g| {
                    matches!(g.status.as_str(), "Initiated" | "Initiating")
                        && g.end
                            .is_some_and(|end| end >= now + duration - Duration::minutes(2))
                })
                .and_then(|g| g.start),
        )
    }

    /// The source to ask JIT for on a VM port: the public IP (`auto`: detected, agreed by two
    /// echo services; or as given), or the allowed range that holds it when the policy lists
    /// only ranges (JIT refuses a single address inside one). Said when it is a range. A
    /// range wider than a /24 is refused, before anything is sent, unless `allow_wide` says
    /// the requester agreed to open the port to all of it.
    pub async fn source_for(
        &self,
        target: &Target,
        port: u16,
        ip: &str,
        allow_wide: bool,
    ) -> Result<policy::SourceChoice, Failure> {
        let address = if ip == "auto" {
            let d = self.detect_ip().await?;
            self.progress(&format!(
                "public IP {} (agreed: {})",
                d.ip,
                d.agreed.join(", ")
            ));
            d.ip
        } else {
            jumpgate_core::ip::parse_public_ipv4(ip, self.config.network.allow_loopback_ip)
                .map_err(|e| Failure::usage(e.to_string()))?
        };
        let rule = target
            .ports
            .iter()
            .find(|r| r.number == port)
            .ok_or_else(|| {
                Failure::new(
                    Kind::Policy,
                    "JitPort",
                    format!(
                        "Not sent: port {port} is not in the JIT policy of {}.",
                        target.vm
                    ),
                )
            })?;
        let chosen = policy::choose_source(rule, address)
            .map_err(|v| Failure::new(Kind::Policy, v.rule, format!("Not sent: {}.", v.message)))?;
        if let (Some(count), false) = (chosen.wide(), allow_wide) {
            return Err(Failure::new(
                Kind::Conflict,
                WIDE_SOURCE,
                format!(
                    "Not sent: the JIT policy of {} admits your address {address} on port {port} only as part of {}, which opens the port to {count} addresses, not just yours. To accept that, run again with --allow-wide-source (in the app, confirm it); or ask an admin to allow a narrower range.",
                    target.vm, chosen.prefix
                ),
            ));
        }
        if chosen.whole_range {
            self.progress(&format!(
                "your address {address} lies in the allowed range {}; JIT accepts only the whole range, so the request asks for it",
                chosen.prefix
            ));
        }
        Ok(chosen)
    }

    /// Renews open access to a VM port before it expires: a new JIT request for the same port
    /// and source, which revokes the old rule (`NewerRequestInitiated`).
    pub async fn extend_port(
        &self,
        vm: &str,
        port: Option<u16>,
        duration: Duration,
        justification: &str,
    ) -> Result<(Target, arm::Grant), Failure> {
        let target = self.find_target(vm).await?;
        let now = self.arm.clock.now();
        let account = self.account().await?;
        let open: Vec<arm::Grant> = open_grants(&target, now)
            .into_iter()
            .filter(|g| account.is(&g.requestor))
            .collect();
        let grant = match port {
            Some(p) => open.into_iter().find(|g| g.port == p),
            None => open.into_iter().next(),
        }
        .ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "nothing_open",
                format!(
                    "You have no open access to {} to extend: use jumpgate open or connect.",
                    target.vm
                ),
            )
        })?;
        self.open_port(
            &target,
            grant.port,
            duration,
            &grant.source,
            justification,
            "port_extended",
        )
        .await
    }
}

/// Whether the service behind a JIT port answers: for RDP (3389) an X.224 Connection Confirm
/// to a Connection Request, for SSH (22) the server's banner, otherwise a TCP connection.
/// A connection that is accepted and then closed at once (a firewall or a gate refusing the
/// source) does not count.
pub async fn probe(ep: &Endpoint, service_port: u16) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = format!("{}:{}", ep.host, ep.port);
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        match service_port {
            22 => {
                let mut banner = [0u8; 4];
                s.read_exact(&mut banner).await.ok()?;
                (&banner == b"SSH-").then_some(())
            }
            3389 => {
                // TPKT + X.224 Connection Request asking for standard RDP security.
                const REQUEST: [u8; 19] =
                    [3, 0, 0, 19, 14, 0xE0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
                s.write_all(&REQUEST).await.ok()?;
                let mut answer = [0u8; 6];
                s.read_exact(&mut answer).await.ok()?;
                (answer[0] == 3 && answer[5] & 0xF0 == 0xD0).then_some(())
            }
            _ => Some(()),
        }
    };
    matches!(
        tokio::time::timeout(StdDuration::from_secs(3), attempt).await,
        Ok(Some(()))
    )
}

/// The port to open, checked with the duration against the VM's JIT policy before anything
/// is sent; the source is checked once it is known.
pub fn preflight(target: &Target, port: Option<u16>, duration: Duration) -> Result<u16, Failure> {
    let port = default_port(target, port)?;
    match policy::check_jit(&target.ports, port, duration, "*") {
        Err(v) if v.rule != "JitSource" => Err(Failure::new(
            Kind::Policy,
            v.rule,
            format!("Not sent: {}.", v.message),
        )),
        _ => Ok(port),
    }
}

pub fn default_port(target: &Target, port: Option<u16>) -> Result<u16, Failure> {
    match port {
        Some(p) => Ok(p),
        None => match target.ports.as_slice() {
            [only] => Ok(only.number),
            _ => target
                .ports
                .iter()
                .find(|p| p.number == 3389 || p.number == 22)
                .map(|p| p.number)
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "{} has several JIT ports; choose one with --port",
                        target.vm
                    ))
                }),
        },
    }
}

/// Every rule in force on the VM's ports, whoever asked for it: several people may hold
/// rules on one jump box at once, each for their own source. Per requestor and source, the
/// newest rule counts.
pub fn open_grants(target: &Target, now: DateTime<Utc>) -> Vec<arm::Grant> {
    let mut open: Vec<arm::Grant> = Vec::new();
    for p in &target.ports {
        let mut rules = arm::grants(target, p.number);
        rules.sort_by_key(|g| std::cmp::Reverse(g.start));
        for g in rules {
            let seen = open.iter().any(|o| {
                o.port == g.port
                    && o.source == g.source
                    && o.requestor.eq_ignore_ascii_case(&g.requestor)
            });
            if !seen && g.status == "Initiated" && g.end.is_some_and(|e| e > now) {
                open.push(g);
            }
        }
    }
    open
}
