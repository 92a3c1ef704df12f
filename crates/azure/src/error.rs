//! The errors the IO edge returns, each with an explanation that says what to do.

use jumpgate_core::explain::{self, Explanation, Kind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ARM answered with an error.
    #[error("{}", explain::arm(*status, code, message))]
    Arm {
        status: u16,
        code: String,
        message: String,
    },
    /// Entra's token endpoint answered with an OAuth error.
    #[error("{}", explain::entra(error, description))]
    Entra { error: String, description: String },
    /// No usable sign-in: the user must sign in interactively.
    #[error("{0}")]
    SignInRequired(String),
    /// Azure asks for a new sign-in that carries more claims (a 401 claims challenge).
    #[error("Azure asks for a stronger sign-in (for example MFA): run jumpgate signin --claims '{claims}'")]
    StepUp { claims: String },
    /// Azure or the network could not be reached, after retries.
    #[error("cannot reach {what}: {detail}")]
    Unreachable { what: String, detail: String },
    /// The OS keychain is unavailable or refused.
    #[error("{0}")]
    Keychain(String),
    /// A wait ran out of time.
    #[error("{0}")]
    TimedOut(String),
    /// The answer could not be understood.
    #[error("unexpected answer from {what}: {detail}")]
    Unexpected { what: String, detail: String },
    /// The state directory cannot be used (missing, someone else's, readable by others).
    #[error("{0}")]
    State(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn explain(&self) -> Explanation {
        match self {
            Error::Arm {
                status,
                code,
                message,
            } => explain::arm(*status, code, message),
            Error::Entra { error, description } => explain::entra(error, description),
            Error::SignInRequired(m) => Explanation {
                kind: Kind::SignIn,
                code: "sign_in_required".into(),
                message: m.clone(),
            },
            Error::StepUp { .. } => Explanation {
                kind: Kind::SignIn,
                code: "step_up".into(),
                message: self.to_string(),
            },
            Error::Unreachable { .. } => Explanation {
                kind: Kind::Unavailable,
                code: "unreachable".into(),
                message: self.to_string(),
            },
            Error::State(m) => Explanation {
                kind: Kind::Other,
                code: "state_dir".into(),
                message: m.clone(),
            },
            Error::TimedOut(m) => Explanation {
                kind: Kind::Other,
                code: "timed_out".into(),
                message: m.clone(),
            },
            other => Explanation {
                kind: Kind::Other,
                code: "error".into(),
                message: other.to_string(),
            },
        }
    }

    pub fn kind(&self) -> Kind {
        self.explain().kind
    }

    /// The ARM error code, when ARM answered.
    pub fn arm_code(&self) -> Option<&str> {
        match self {
            Error::Arm { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for jumpgate_core::explain::Failure {
    fn from(e: Error) -> jumpgate_core::explain::Failure {
        let claims = match &e {
            Error::Arm { code, message, .. } => {
                jumpgate_core::explain::step_up_claims(code, message)
            }
            Error::StepUp { claims } => Some(claims.clone()),
            _ => None,
        };
        jumpgate_core::explain::Failure {
            timed_out: matches!(e, Error::TimedOut(_)),
            explanation: e.explain(),
            claims,
        }
    }
}
