//! Who is calling: bearer tokens (JWT, HS256) turned into an [`Actor`], and the one table of
//! which role each operation needs ([`policy`]).
//!
//! With no secret configured the server runs in open mode: every caller is an admin. That is
//! for local development only, so the server then refuses to listen on anything but loopback.

pub mod policy;
mod token;

pub use token::{AuthSettings, MIN_SECRET_BYTES, mint};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;

use crate::domain::Actor;
use crate::error::{Error, Result};

/// The caller of one request: authenticated, or anonymous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    actor: Option<Actor>,
    /// When the caller's token stops being valid (none in open mode).
    expires_at: Option<SystemTime>,
}

impl Caller {
    /// A caller without credentials.
    pub fn anonymous() -> Self {
        Self {
            actor: None,
            expires_at: None,
        }
    }

    fn authenticated(actor: Actor, expires_at: Option<SystemTime>) -> Self {
        Self {
            actor: Some(actor),
            expires_at,
        }
    }

    /// The authenticated actor, or `UNAUTHENTICATED`.
    pub fn actor(&self) -> Result<&Actor> {
        self.actor
            .as_ref()
            .ok_or_else(|| Error::Unauthenticated("this operation needs a bearer token".into()))
    }

    /// When the caller's credentials expire: a long-lived subscription ends then.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The same caller with no expiry: for work shared by several callers of one role, each
    /// of which keeps its own expiry.
    pub fn without_expiry(&self) -> Self {
        Self {
            actor: self.actor.clone(),
            expires_at: None,
        }
    }
}

/// Turns credentials into callers.
#[derive(Clone)]
pub struct Authenticator {
    verifier: Option<(DecodingKey, Validation)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("open_mode", &self.is_open())
            .finish()
    }
}

impl Authenticator {
    /// Verifies tokens signed with the configured secret, or runs in open mode without one.
    pub fn new(settings: &AuthSettings) -> Self {
        let verifier = settings.secret.as_ref().map(|secret| {
            // The algorithm is pinned: a token claiming `none` or anything else is refused.
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_required_spec_claims(&["exp", "sub"]);
            validation.leeway = 5;
            match &settings.issuer {
                Some(issuer) => validation.set_issuer(&[issuer]),
                None => validation.iss = None,
            }
            match &settings.audience {
                Some(audience) => validation.set_audience(&[audience]),
                None => validation.validate_aud = false,
            }
            (
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                validation,
            )
        });
        Self { verifier }
    }

    /// Whether every caller is let in as admin (no secret configured).
    pub fn is_open(&self) -> bool {
        self.verifier.is_none()
    }

    /// The caller presenting `authorization` (an `Authorization` header value). No header is
    /// an anonymous caller; a header that is not a valid bearer token is `UNAUTHENTICATED`.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller> {
        let Some((key, validation)) = &self.verifier else {
            return Ok(Caller::authenticated(Actor::open_mode(), None));
        };
        let Some(authorization) = authorization else {
            return Ok(Caller::anonymous());
        };
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or_else(|| {
                Error::Unauthenticated("expected `Authorization: Bearer <token>`".into())
            })?;
        let claims = jsonwebtoken::decode::<token::Claims>(token.trim(), key, validation)
            .map_err(|error| {
                tracing::debug!(%error, "refused a bearer token");
                Error::Unauthenticated("the bearer token is invalid or expired".into())
            })?
            .claims;
        if claims.sub.trim().is_empty()
            || claims.sub.chars().count() > Actor::MAX_SUBJECT_CHARS
            || claims.sub.chars().any(char::is_control)
        {
            return Err(Error::Unauthenticated(
                "the bearer token's subject is empty, too long or holds control characters".into(),
            ));
        }
        Ok(Caller::authenticated(
            Actor {
                subject: claims.sub,
                role: claims.role,
            },
            // An `exp` beyond what the clock can represent never comes: no expiry.
            UNIX_EPOCH.checked_add(Duration::from_secs(claims.exp)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn settings() -> AuthSettings {
        AuthSettings {
            secret: Some("a-unit-test-secret-of-32-bytes-at-least".into()),
            issuer: Some("stockroom".into()),
            audience: Some("inventory".into()),
        }
    }

    #[test]
    fn a_minted_token_authenticates_its_subject_and_role() {
        let token = mint(&settings(), Role::Manager, "alice", Duration::from_secs(60)).unwrap();
        let caller = Authenticator::new(&settings())
            .authenticate(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(
            caller.actor().unwrap(),
            &Actor {
                subject: "alice".into(),
                role: Role::Manager
            }
        );
    }

    #[test]
    fn a_token_whose_expiry_no_clock_can_reach_never_expires_and_does_not_panic() {
        let claims = token::Claims {
            sub: "forever".into(),
            role: Role::Viewer,
            exp: u64::MAX,
            iat: None,
            iss: Some("stockroom".into()),
            aud: Some(token::Audience::One("inventory".into())),
        };
        let secret = settings().secret.unwrap();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()),
        )
        .unwrap();
        let caller = Authenticator::new(&settings())
            .authenticate(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(caller.actor().unwrap().subject, "forever");
        assert_eq!(caller.expires_at(), None);
    }

    #[test]
    fn open_mode_makes_everyone_admin_and_no_header_is_anonymous_otherwise() {
        let open = Authenticator::new(&AuthSettings::default());
        assert_eq!(
            open.authenticate(None).unwrap().actor().unwrap().role,
            Role::Admin
        );
        let closed = Authenticator::new(&settings());
        assert_eq!(closed.authenticate(None).unwrap(), Caller::anonymous());
        assert_eq!(
            closed.authenticate(Some("Basic abc")).unwrap_err().code(),
            "UNAUTHENTICATED"
        );
    }
}
