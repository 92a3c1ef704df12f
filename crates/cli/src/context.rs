//! What every command needs: the configuration, the session, the ARM client and the state
//! directory.

use std::path::PathBuf;
use std::sync::Arc;

use jumpgate_azure::http::Arm;
use jumpgate_azure::session::Session;
use jumpgate_azure::signin::Authority;
use jumpgate_azure::tokens::{Account, TokenStore};
use jumpgate_core::config::{self, Config};
use jumpgate_core::explain::Kind;

use crate::output::{progress, Failure, Outcome};

pub struct Ctx {
    pub config: Config,
    pub json: bool,
    pub session: Arc<Session>,
    pub arm: Arm,
    pub state_dir: PathBuf,
}

impl Ctx {
    pub fn load(explicit: Option<&std::path::Path>, json: bool) -> Outcome<Ctx> {
        let path = config::locate(
            explicit,
            std::env::var_os("JUMPGATE_CONFIG").map(PathBuf::from),
        )?;
        let config = config::load(&path)?;
        let state_dir = config
            .storage
            .state_dir
            .clone()
            .or_else(|| dirs::data_local_dir().map(|d| d.join("jumpgate")))
            .unwrap_or_else(|| PathBuf::from(".jumpgate"));
        let fallback = config
            .storage
            .allow_file_fallback
            .then(|| state_dir.join("tokens.json"));
        let store = TokenStore::new(
            &config.storage.keyring_service,
            &config.azure.tenant_id,
            fallback,
        );
        let authority = Authority {
            base: config.authority(),
            client_id: config.azure.client_id.clone(),
        };
        let session = Arc::new(Session::new(authority, store));
        let arm =
            Arm::new(config.arm(), session.clone()).with_notify(Arc::new(|m: &str| progress(m)));
        session.follow_clock(arm.clock.clone());
        Ok(Ctx {
            config,
            json,
            session,
            arm,
            state_dir,
        })
    }

    pub fn authority(&self) -> Authority {
        Authority {
            base: self.config.authority(),
            client_id: self.config.azure.client_id.clone(),
        }
    }

    /// The signed-in account, or a clear "sign in first".
    pub async fn account(&self) -> Outcome<Account> {
        match self.session.current().await? {
            Some(t) => Ok(t.account),
            None => Err(Failure::new(
                Kind::SignIn,
                "sign_in_required",
                "You are not signed in: run jumpgate signin.",
            )),
        }
    }

    /// The configured subscription, or the first one the user can see.
    pub async fn subscription(&self) -> Outcome<String> {
        if let Some(s) = &self.config.azure.subscription_id {
            return Ok(s.clone());
        }
        let subs = jumpgate_azure::arm::subscriptions(&self.arm).await?;
        subs.into_iter().next().ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                "no_subscription",
                "You can see no Azure subscription: ask for access, or set azure.subscription_id.",
            )
        })
    }
}
