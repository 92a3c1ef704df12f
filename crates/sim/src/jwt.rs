//! Signed JSON Web Tokens for the simulated Entra ID.
//!
//! Each simulator run makes a fresh P-256 key and signs with ES256; the public key is served
//! as a JWK at the tenant's `discovery/v2.0/keys`. Entra signs with RS256: the simulator's
//! README records that difference. Clients treat ARM access tokens as opaque, and any JOSE
//! library verifies both algorithms.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token signature is not valid")]
    BadSignature,
}

pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl Signer {
    pub fn generate() -> Signer {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("system RNG works");
        let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("fresh key parses");
        let kid = B64.encode(&key.public_key().as_ref()[1..9]);
        Signer { key, rng, kid }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA signing does not fail with a valid key");
        format!("{signing_input}.{}", B64.encode(sig.as_ref()))
    }

    /// Checks the signature and returns the claims. Expiry and revocation are the caller's
    /// business, because they depend on the simulator's clock and state.
    pub fn verify(&self, token: &str) -> Result<Value, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }

    /// The public key as a JWK set, for the tenant's `jwks_uri`.
    pub fn jwks(&self) -> Value {
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "use": "sig",
            "alg": "ES256",
            "kid": self.kid,
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..65]),
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_detects_tampering() {
        let signer = Signer::generate();
        let token = signer.sign(&json!({"upn": "alice@contoso.example"}));
        assert_eq!(
            signer.verify(&token).expect("valid")["upn"],
            "alice@contoso.example"
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(json!({"upn": "mallory@contoso.example"}).to_string());
        parts[1] = &forged;
        assert_eq!(
            signer.verify(&parts.join(".")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(signer.verify("not-a-jwt"), Err(TokenError::Malformed));
        let other = Signer::generate();
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
    }
}
