//! What every command needs: the engine (configuration, session, ARM client, state) and
//! whether to print JSON.

use jumpgate_azure::engine::Engine;
use jumpgate_core::config;

use crate::output::Outcome;

pub struct Ctx {
    pub engine: Engine,
    pub json: bool,
}

impl Ctx {
    pub fn load(explicit: Option<&std::path::Path>, json: bool) -> Outcome<Ctx> {
        let config = config::load_from_env(explicit)?;
        Ok(Ctx {
            engine: Engine::new(config)?,
            json,
        })
    }
}

impl std::ops::Deref for Ctx {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}
