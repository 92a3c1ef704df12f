//! What every command needs: the engine (configuration, session, ARM client, state) and
//! whether to print JSON.

use jumpgate_azure::engine::Engine;
use jumpgate_core::config;

use crate::output::Outcome;

pub struct Ctx {
    pub engine: Engine,
    pub json: bool,
    /// The whole configuration, every tenant in it; the engine's is the chosen tenant's.
    pub whole: config::Config,
}

impl Ctx {
    /// The engine for the tenant `tenant` names (`[azure]`'s when `None`).
    pub fn load(
        explicit: Option<&std::path::Path>,
        json: bool,
        tenant: Option<&str>,
    ) -> Outcome<Ctx> {
        let whole = config::load_from_env(explicit)?;
        let config = match tenant {
            Some(name) => whole
                .for_tenant(name)
                .map_err(jumpgate_core::explain::Failure::usage)?,
            None => whole.clone(),
        };
        Ok(Ctx {
            engine: Engine::new(config)?,
            json,
            whole,
        })
    }
}

impl std::ops::Deref for Ctx {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}
