//! Idempotency keys as callers send them.

use crate::error::{Error, Result};

/// A caller's idempotency key: 1 to 200 characters, no control characters, kept exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates an optional raw key; `None` stays `None`.
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>> {
        let Some(raw) = raw else { return Ok(None) };
        if raw.trim().is_empty() || raw.chars().count() > Self::MAX_CHARS {
            return Err(Error::bad_field(
                "idempotencyKey",
                format!("idempotencyKey must be 1 to {} characters", Self::MAX_CHARS),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(Error::bad_field(
                "idempotencyKey",
                "idempotencyKey must not contain control characters",
            ));
        }
        Ok(Some(Self(raw.to_owned())))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_exactly_and_bounded() {
        assert_eq!(IdempotencyKey::parse(None).unwrap(), None);
        assert_eq!(
            IdempotencyKey::parse(Some(" k-1 "))
                .unwrap()
                .unwrap()
                .as_str(),
            " k-1 "
        );
        assert!(IdempotencyKey::parse(Some("")).is_err());
        assert!(IdempotencyKey::parse(Some(&"k".repeat(201))).is_err());
        assert!(IdempotencyKey::parse(Some("a\nb")).is_err());
    }
}
