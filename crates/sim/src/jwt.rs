//! Signed JSON Web Tokens for the simulated Entra ID.
//!
//! Tokens are signed with RS256, as Entra signs them, by a fixed RSA key that is embedded in
//! the binary (`jwt_test_key.pem`: a simulator-only test key, public on purpose; `ring` cannot
//! generate RSA keys). Its public half is served as a JWK (`kty: RSA`, `n`, `e`) at the
//! tenant's `discovery/v2.0/keys`, and every token names it by `kid`.
//!
//! Because the key is the same on every run, a token from an earlier run still has a valid
//! signature; the token checks in `entra.rs` also compare its issuer with this run's.

use base64::engine::general_purpose::{STANDARD as B64_STD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// The simulator-only RSA key, with the comment that says what it is.
const KEY_PEM: &str = include_str!("jwt_test_key.pem");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token signature is not valid")]
    BadSignature,
}

pub struct Signer {
    key: RsaKeyPair,
    public: RsaPublicKeyComponents<Vec<u8>>,
    rng: SystemRandom,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

/// The DER bytes of the PKCS#8 block in a PEM text (lines outside the block are ignored).
fn pem_body(pem: &str) -> Vec<u8> {
    let base64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    B64_STD
        .decode(base64.trim())
        .expect("the embedded simulator key is valid base64")
}

impl Signer {
    /// The simulator's signer, with its embedded RSA key.
    pub fn simulator() -> Signer {
        let der = pem_body(KEY_PEM);
        let key = RsaKeyPair::from_pkcs8(&der).expect("the embedded simulator key is PKCS#8");
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
        // Entra's kids are base64 thumbprints; this one is of the modulus.
        let kid = B64.encode(&Sha256::digest(&public.n)[..20]);
        Signer {
            key,
            public,
            rng: SystemRandom::new(),
            kid,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing does not fail with a valid key and buffer");
        format!("{signing_input}.{}", B64.encode(sig))
    }

    /// Checks the signature and returns the claims. Expiry, issuer and revocation are the
    /// caller's business, because they depend on the simulator's clock and state.
    pub fn verify(&self, token: &str) -> Result<Value, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = B64
            .decode(h)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if header["alg"] != "RS256" {
            return Err(TokenError::BadSignature);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        self.public
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                format!("{h}.{p}").as_bytes(),
                &sig,
            )
            .map_err(|_| TokenError::BadSignature)?;
        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }

    /// The public key as a JWK set, for the tenant's `jwks_uri`, in Entra's shape.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": B64.encode(&self.public.n),
            "e": B64.encode(&self.public.e),
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_detects_tampering() {
        let signer = Signer::simulator();
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
        // An "alg: none" token with an empty signature is refused.
        let none = format!(
            "{}.{}.",
            B64.encode(json!({"alg": "none"}).to_string()),
            B64.encode(json!({"upn": "mallory"}).to_string())
        );
        assert_eq!(signer.verify(&none), Err(TokenError::BadSignature));
    }

    #[test]
    fn the_jwk_is_a_2048_bit_rsa_key_with_exponent_65537() {
        let jwks = Signer::simulator().jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "RSA");
        let n = B64
            .decode(key["n"].as_str().expect("n"))
            .expect("base64url");
        assert_eq!(n.len(), 256);
        assert_eq!(key["e"], "AQAB");
    }
}
