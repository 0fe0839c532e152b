//! JWT claims and minting (`stockroom token`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::error::{Error, Result};

/// The shortest token secret the server accepts, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// How tokens are signed and checked.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    /// The HS256 secret; none means open mode. `Debug` never shows it.
    pub secret: Option<SecretString>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
}

/// The claims Stockroom reads: `sub`, `role` and `exp` are required.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// A token's `aud`: one audience, or several (both are valid JWT).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A token for `subject` with `role`, valid for `ttl`, signed with the configured secret (and
/// carrying the configured issuer and audience).
pub fn mint(settings: &AuthSettings, role: Role, subject: &str, ttl: Duration) -> Result<String> {
    let secret = settings.secret.as_ref().ok_or_else(|| {
        Error::bad_input("no secret configured: set STOCKROOM_JWT_SECRET or --jwt-secret")
    })?;
    if secret.expose_secret().len() < MIN_SECRET_BYTES {
        return Err(Error::bad_input(format!(
            "the secret is too short: use at least {MIN_SECRET_BYTES} bytes"
        )));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Error::internal)?
        .as_secs();
    let claims = Claims {
        sub: subject.to_owned(),
        role,
        exp: now + ttl.as_secs(),
        iat: Some(now),
        iss: settings.issuer.clone(),
        aud: settings.audience.clone().map(Audience::One),
    };
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map_err(Error::internal)
}
