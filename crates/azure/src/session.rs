//! A valid access token on demand: from the store while it has five minutes left (by ARM's
//! clock), else renewed the way it was obtained, with the rotated refresh token saved before
//! it is used.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::http::ServerClock;
use crate::signin::{self, Authority};
use crate::tokens::{Source, TokenSet, TokenStore};

pub struct Session {
    authority: Authority,
    store: TokenStore,
    clock: Mutex<Option<Arc<ServerClock>>>,
    cached: tokio::sync::Mutex<Option<TokenSet>>,
    /// Held across a renewal, so two processes (the tray and the CLI, say) never spend the
    /// same rotating refresh token: Entra treats a reused one as stolen.
    renewal_lock: Option<PathBuf>,
    /// Microsoft Graph tokens by scope, in memory only, with their expiry.
    other: tokio::sync::Mutex<std::collections::HashMap<String, (String, i64)>>,
    /// Why the stored sign-in was last passed over: made for another authority, client or
    /// audience than the configuration names.
    passed_over: Mutex<Option<String>>,
}

const MARGIN_SECS: i64 = 300;

impl Session {
    pub fn new(authority: Authority, store: TokenStore) -> Session {
        Session {
            authority,
            store,
            clock: Mutex::new(None),
            cached: tokio::sync::Mutex::new(None),
            renewal_lock: None,
            other: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            passed_over: Mutex::new(None),
        }
    }

    /// Renewals take an exclusive lock on this file first.
    pub fn with_renewal_lock(mut self, path: PathBuf) -> Session {
        self.renewal_lock = Some(path);
        self
    }

    /// Waits for the renewal lock; it is released when the returned file is dropped.
    async fn lock_renewal(&self) -> Result<Option<std::fs::File>> {
        let Some(path) = self.renewal_lock.clone() else {
            return Ok(None);
        };
        let locked = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            if let Some(dir) = path.parent() {
                crate::private::ensure_dir(dir)?;
            }
            let f = crate::private::open_lock(&path)?;
            f.lock()?;
            Ok(f)
        })
        .await
        .map_err(|e| Error::Other(format!("renewing the sign-in failed: {e}")))?;
        locked
            .map(Some)
            .map_err(|e| Error::Other(format!("cannot lock the sign-in for renewal: {e}")))
    }

    /// Uses ARM's clock (from its `Date` headers) to judge expiry.
    pub fn follow_clock(&self, clock: Arc<ServerClock>) {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(clock);
    }

    fn now(&self) -> i64 {
        let clock = self.clock.lock().unwrap_or_else(|p| p.into_inner()).clone();
        clock
            .map(|c| c.now())
            .unwrap_or_else(chrono::Utc::now)
            .timestamp()
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The stored sign-in, when it was made for the authority, client and audiences this
    /// session's configuration names. Else it is passed over as if absent: its refresh token
    /// is never sent and its access token never used, and [`Session::passed_over`] says why.
    /// It is not deleted, so going back to the configuration it was made for finds it again.
    async fn load_bound(&self) -> Result<Option<TokenSet>> {
        let loaded = self.store.load().await?;
        let why = loaded.as_ref().and_then(|tokens| match &tokens.made_for {
            Some(made_for) => made_for.differs(&self.authority.binding()),
            None => Some("was stored without saying what it was made for".to_string()),
        });
        *self.passed_over.lock().unwrap_or_else(|p| p.into_inner()) = why.clone();
        Ok(loaded.filter(|_| why.is_none()))
    }

    /// Why a stored sign-in was not used, if one was: "was made for the authority …, and the
    /// configuration now names …".
    pub fn passed_over(&self) -> Option<String> {
        self.passed_over
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// "Sign in", with why when a stored sign-in was passed over.
    fn sign_in_required(&self) -> Error {
        Error::SignInRequired(match self.passed_over() {
            Some(why) => format!(
                "Your sign-in {why}, so it is not used there: run jumpgate signin to sign in again."
            ),
            None => "You are not signed in: run jumpgate signin.".into(),
        })
    }

    /// The stored sign-in, if any.
    pub async fn current(&self) -> Result<Option<TokenSet>> {
        let mut cached = self.cached.lock().await;
        if cached.is_none() {
            *cached = self.load_settled().await?;
        }
        Ok(cached.clone())
    }

    /// Reads the stored sign-in. Another process renewing it rewrites the set under the
    /// renewal lock, and mid-write the set reads as absent: an absent set is read once more
    /// after that lock, so a renewal elsewhere never looks like a sign-out here.
    async fn load_settled(&self) -> Result<Option<TokenSet>> {
        if let Some(tokens) = self.load_bound().await? {
            return Ok(Some(tokens));
        }
        if self.renewal_lock.is_none() || self.passed_over().is_some() {
            return Ok(None);
        }
        let _guard = self.lock_renewal().await?;
        self.load_bound().await
    }

    pub async fn access_token(&self) -> Result<String> {
        let mut cached = self.cached.lock().await;
        if cached.is_none() {
            *cached = self.load_settled().await?;
        }
        let Some(tokens) = cached.clone() else {
            return Err(self.sign_in_required());
        };
        if tokens.expires_at - self.now() > MARGIN_SECS {
            return Ok(tokens.access_token);
        }
        self.renew_into(&mut cached, &tokens).await
    }

    /// Renews and stores the result. A sign-in the issuer refuses is dropped, so nothing
    /// retries with it (RELIABILITY #6: one interactive sign-in, never a loop).
    async fn renew_into(&self, cached: &mut Option<TokenSet>, tokens: &TokenSet) -> Result<String> {
        let _guard = self.lock_renewal().await?;
        if self.renewal_lock.is_some() {
            // Another process may have renewed while this one waited or held an old copy:
            // its tokens are the ones to use, and its refresh token the only valid one.
            match self.load_bound().await? {
                None => {
                    *cached = None;
                    return Err(self.sign_in_required());
                }
                Some(stored)
                    if stored.access_token != tokens.access_token
                        && stored.expires_at - self.now() > MARGIN_SECS =>
                {
                    let token = stored.access_token.clone();
                    *cached = Some(stored);
                    return Ok(token);
                }
                Some(stored) => {
                    let renewed = self.renew(&stored).await;
                    return self.keep(cached, renewed).await;
                }
            }
        }
        let renewed = self.renew(tokens).await;
        self.keep(cached, renewed).await
    }

    async fn keep(
        &self,
        cached: &mut Option<TokenSet>,
        renewed: Result<TokenSet>,
    ) -> Result<String> {
        match renewed {
            Ok(fresh) => {
                self.store.save(&fresh).await?;
                let token = fresh.access_token.clone();
                *cached = Some(fresh);
                Ok(token)
            }
            Err(e) => {
                if e.kind() == jumpgate_core::explain::Kind::SignIn {
                    let _ = self.store.delete().await;
                    *cached = None;
                }
                Err(e)
            }
        }
    }

    /// Renews now, whatever the expiry says (after a 401).
    pub async fn force_refresh(&self) -> Result<String> {
        let mut cached = self.cached.lock().await;
        let Some(tokens) = cached.clone().or(self.load_settled().await?) else {
            return Err(self.sign_in_required());
        };
        self.renew_into(&mut cached, &tokens).await
    }

    async fn renew(&self, tokens: &TokenSet) -> Result<TokenSet> {
        // The oauth2 crate's futures borrow their HTTP client in a way rustc cannot prove
        // Send, and callers (the tray's commands) need Send futures. Renewal therefore runs
        // to completion on a blocking thread, over owned values.
        let (authority, tokens) = (self.authority.clone(), tokens.clone());
        let handle = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            handle.block_on(async move {
                match tokens.source {
                    Source::AzureCli => signin::azure_cli(&authority).await,
                    _ => signin::refresh(&authority, &tokens).await,
                }
            })
        });
        task.await
            .map_err(|e| Error::Other(format!("renewing the sign-in failed: {e}")))?
    }

    /// An access token for another resource's `scope` (Microsoft Graph), from the refresh
    /// token, kept in memory only. The rotated refresh token is stored under the renewal lock.
    /// A token refused for that resource (no consent, a Conditional Access policy on Graph)
    /// leaves the sign-in alone: it still serves ARM, which decides for itself.
    pub async fn token_for(&self, scope: &str) -> Result<String> {
        let mut other = self.other.lock().await;
        if let Some((token, exp)) = other.get(scope) {
            if exp - self.now() > MARGIN_SECS {
                return Ok(token.clone());
            }
        }
        // The sign-in's own lock is taken only once the renewal lock is released: a renewal
        // of the ARM token holds them the other way round (its memory copy, then the file),
        // and ARM and Graph are read side by side.
        let (token, exp, rotated) = {
            let _guard = self.lock_renewal().await?;
            let Some(tokens) = self.load_bound().await? else {
                return Err(self.sign_in_required());
            };
            let (authority, current, wanted) =
                (self.authority.clone(), tokens.clone(), scope.to_string());
            let handle = tokio::runtime::Handle::current();
            let fetched = tokio::task::spawn_blocking(move || {
                handle.block_on(
                    async move { signin::refresh_for(&authority, &current, &wanted).await },
                )
            })
            .await
            .map_err(|e| Error::Other(format!("renewing the sign-in failed: {e}")))?;
            let (kept, token, exp) = fetched?;
            let rotated = kept.refresh_token != tokens.refresh_token;
            if rotated {
                self.store.save(&kept).await?;
            }
            (token, exp, rotated.then_some(kept))
        };
        other.insert(scope.to_string(), (token.clone(), exp));
        drop(other);
        if let Some(kept) = rotated {
            *self.cached.lock().await = Some(kept);
        }
        Ok(token)
    }

    /// Forgets the token held for another resource's `scope`, so the next call asks for a new
    /// one (after that resource refused it, say).
    pub async fn forget_token_for(&self, scope: &str) {
        self.other.lock().await.remove(scope);
    }

    /// Drops what this process holds in memory, so the next call reads the keychain (after
    /// a sign-in stored there).
    pub async fn forget_cached(&self) {
        *self.cached.lock().await = None;
        self.other.lock().await.clear();
    }

    /// Deletes the stored sign-in. The memory copy's lock is held until the keychain has
    /// deleted it: a read meanwhile (the watcher's, say) would otherwise load the set being
    /// deleted and keep it in memory, signed in after the sign-out.
    pub async fn sign_out(&self) -> Result<()> {
        {
            let mut cached = self.cached.lock().await;
            self.store.delete().await?;
            *cached = None;
        }
        self.other.lock().await.clear();
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::http::TokenSource for Session {
    async fn token(&self) -> Result<String> {
        self.access_token().await
    }
    async fn refresh(&self) -> Result<String> {
        self.force_refresh().await
    }
}

/// Microsoft Graph tokens for one scope (a set of Graph permissions), from the sign-in's
/// refresh token: the token source of the engine's Graph client.
pub struct GraphTokens {
    pub session: Arc<Session>,
    pub scope: String,
}

#[async_trait::async_trait]
impl crate::http::TokenSource for GraphTokens {
    async fn token(&self) -> Result<String> {
        self.session.token_for(&self.scope).await
    }
    async fn refresh(&self) -> Result<String> {
        self.session.forget_token_for(&self.scope).await;
        self.session.token_for(&self.scope).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::{response, serve};

    fn authority(base: String) -> Authority {
        Authority {
            base,
            client_id: "c".into(),
            tenant: "t".into(),
            arm_scope: "https://management.azure.com/.default".into(),
            graph_audience: "https://graph.microsoft.com".into(),
        }
    }

    fn signed_in(made_for: Option<crate::tokens::Binding>, expires_at: i64) -> TokenSet {
        TokenSet {
            made_for,
            ..crate::tokens::alice_signed_in("arm-access".into(), "refresh".into(), expires_at)
        }
    }

    fn store() -> TokenStore {
        TokenStore::new(
            &format!("jumpgate-session-test-{}", uuid::Uuid::new_v4().simple()),
            "tenant",
            None,
        )
    }

    /// RELIABILITY #29: a sign-in is used only with the authority, client and audiences it was
    /// made for. A configuration naming others (changed by someone else, say) never gets its
    /// refresh token sent, nor its access token; the sign-in is kept for the configuration it
    /// belongs to.
    #[tokio::test]
    async fn a_sign_in_is_never_sent_where_it_was_not_made_for() {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = asked.clone();
        let elsewhere = serve(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            response("500 Internal Server Error", &[], b"")
        })
        .await;
        let made_here = authority("https://login.microsoftonline.com/t".into()).binding();
        let expired = chrono::Utc::now().timestamp() - 60;
        let fresh = chrono::Utc::now().timestamp() + 3600;
        let cases = [
            (
                Some(made_here.clone()),
                authority(elsewhere.clone()),
                "the authority",
            ),
            (
                Some(made_here.clone()),
                Authority {
                    client_id: "other".into(),
                    ..authority("https://login.microsoftonline.com/t".into())
                },
                "the client id",
            ),
            (
                Some(made_here.clone()),
                Authority {
                    arm_scope: "https://arm.evil.example/.default".into(),
                    ..authority("https://login.microsoftonline.com/t".into())
                },
                "the audiences",
            ),
            (None, authority(elsewhere.clone()), "without saying"),
        ];
        for (made_for, now, says) in cases {
            for expires_at in [expired, fresh] {
                let store = store();
                store
                    .save(&signed_in(made_for.clone(), expires_at))
                    .await
                    .expect("keychain");
                let session = Session::new(now.clone(), store.clone());
                let refused = session.access_token().await.expect_err(says);
                assert_eq!(refused.kind(), jumpgate_core::explain::Kind::SignIn);
                assert!(
                    refused.to_string().contains(says) && refused.to_string().contains("signin"),
                    "{refused}"
                );
                assert!(session.current().await.expect("read").is_none());
                assert!(session.force_refresh().await.is_err());
                assert!(session
                    .token_for("https://graph.microsoft.com/User.ReadBasic.All")
                    .await
                    .is_err());
                assert!(session.passed_over().is_some_and(|w| w.contains(says)));
                assert!(store.load().await.expect("keychain").is_some(), "kept");
                store.delete().await.expect("clean up");
            }
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Where it was made (a trailing slash aside), it is used.
        let store = store();
        let here = authority("https://login.microsoftonline.com/t/".into());
        store
            .save(&signed_in(Some(made_here), fresh))
            .await
            .expect("keychain");
        let session = Session::new(here, store.clone());
        assert_eq!(session.access_token().await.expect("used"), "arm-access");
        assert_eq!(session.passed_over(), None);
        store.delete().await.expect("clean up");
    }

    /// §6 of the groups issue: Microsoft Graph refusing a token (a Conditional Access policy
    /// on Graph asking for MFA, say) says nothing about the sign-in, which ARM still accepts.
    #[tokio::test]
    async fn a_token_refused_for_graph_keeps_the_sign_in() {
        let base = serve(|_| {
            response(
                "400 Bad Request",
                &[("Content-Type", "application/json")],
                br#"{"error":"interaction_required","error_description":"AADSTS50076: multi-factor authentication is required for Microsoft Graph."}"#,
            )
        })
        .await;
        let store = store();
        let authority = authority(base);
        let signed_in = signed_in(
            Some(authority.binding()),
            chrono::Utc::now().timestamp() + 3600,
        );
        store.save(&signed_in).await.expect("keychain");
        let session = Session::new(authority, store.clone());
        let refused = session
            .token_for(
                "https://graph.microsoft.com/PrivilegedEligibilitySchedule.Read.AzureADGroup",
            )
            .await
            .expect_err("Graph refused");
        assert_eq!(refused.kind(), jumpgate_core::explain::Kind::SignIn);
        assert_eq!(
            store
                .load()
                .await
                .expect("keychain")
                .map(|t| t.access_token),
            Some("arm-access".to_string()),
            "the sign-in is kept"
        );
        assert_eq!(
            session.access_token().await.expect("ARM token"),
            "arm-access"
        );
        store.delete().await.expect("clean up");
    }
}
