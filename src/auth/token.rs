//! JWT claims and minting (`stockroom token`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::error::{Error, Result};

/// How tokens are signed and checked.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    /// The HS256 secret; none means open mode.
    pub secret: Option<String>,
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
    pub aud: Option<String>,
}

/// A token for `subject` with `role`, valid for `ttl`, signed with the configured secret (and
/// carrying the configured issuer and audience).
pub fn mint(settings: &AuthSettings, role: Role, subject: &str, ttl: Duration) -> Result<String> {
    let secret = settings.secret.as_ref().ok_or_else(|| {
        Error::bad_input("no secret configured: set STOCKROOM_JWT_SECRET or --jwt-secret")
    })?;
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
        aud: settings.audience.clone(),
    };
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(Error::internal)
}
