//! The two error shapes the simulator speaks: ARM's `{"error": {"code", "message"}}` and
//! Entra's OAuth error JSON.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An ARM error response (common-types `ErrorResponse`).
#[derive(Debug, Clone)]
pub struct ArmError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ArmError {
        ArmError {
            status,
            code: code.into(),
            message: message.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ArmError {
        ArmError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> ArmError {
        ArmError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 403 `AuthorizationFailed`, worded as ARM words it.
    pub fn authorization_failed(upn: &str, oid: &str, action: &str, scope: &str) -> ArmError {
        ArmError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client '{upn}' with object id '{oid}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        )
    }

    /// 401 with the `WWW-Authenticate` challenge ARM sends.
    pub fn unauthenticated(code: &str, message: &str, authority: &str) -> ArmError {
        let mut err = ArmError::new(StatusCode::UNAUTHORIZED, code, message);
        err.www_authenticate = Some(format!(
            "Bearer authorization_uri=\"{authority}\", error=\"invalid_token\", error_description=\"{message}\""
        ));
        err
    }

    pub fn invalid_content(detail: impl std::fmt::Display) -> ArmError {
        ArmError::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: '{detail}'."),
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self
            .www_authenticate
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// PIM's refusal to end an activation within `min_secs` of its start, worded (and misspelt)
/// as PIM words it, in whole minutes.
pub fn active_duration_too_short(min_secs: u64) -> String {
    format!(
        "The Active duration is too short. Miniumum Required is {} minutes.",
        min_secs.div_ceil(60)
    )
}

/// An OAuth 2.0 error from the Entra token and device-code endpoints.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub aadsts: u32,
    pub description: String,
    pub time: String,
    /// A claims challenge to sign in again with (`interaction_required`), as Entra sends it.
    pub claims: Option<String>,
}

impl OAuthError {
    pub fn new(error: &'static str, aadsts: u32, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            aadsts,
            description: description.into(),
            time: String::new(),
            claims: None,
        }
    }

    pub fn at(mut self, time: String) -> OAuthError {
        self.time = time;
        self
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let trace = uuid::Uuid::new_v4().to_string();
        let correlation = uuid::Uuid::new_v4().to_string();
        let mut body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {}",
                self.aadsts, self.description, self.time
            ),
            "error_codes": [self.aadsts],
            "timestamp": self.time,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.aadsts),
        });
        if let Some(claims) = self.claims {
            body["claims"] = json!(claims);
        }
        (self.status, axum::Json(body)).into_response()
    }
}
