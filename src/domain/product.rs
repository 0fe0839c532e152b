//! Product names and SKUs.

use crate::error::{Error, Result};

/// A product name: trimmed, 1 to 200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// The longest name accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates a raw name.
    pub fn parse(raw: &str) -> Result<Self> {
        parse_text("name", raw, Self::MAX_CHARS).map(Self)
    }

    /// The name as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that searches compare against.
    pub fn search_key(&self) -> String {
        fold_case(&self.0)
    }
}

/// A stock-keeping unit: trimmed, 1 to 64 characters, no control characters. Stored as given,
/// compared case-insensitively through [`Sku::key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// The longest SKU accepted, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates a raw SKU.
    pub fn parse(raw: &str) -> Result<Self> {
        parse_text("sku", raw, Self::MAX_CHARS).map(Self)
    }

    /// The SKU as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and look-ups use: `ABC-1` and `abc-1` share it.
    pub fn key(&self) -> String {
        fold_case(&self.0)
    }
}

/// Case-folds text the same way for storage and for look-ups, on every database backend.
pub fn fold_case(text: &str) -> String {
    text.to_lowercase()
}

pub(super) fn parse_text(field: &str, raw: &str, max_chars: usize) -> Result<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Error::bad_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    let chars = trimmed.chars().count();
    if chars > max_chars {
        return Err(Error::bad_field(
            field,
            format!("{field} must be at most {max_chars} characters (got {chars})"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::bad_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(ProductName::parse("  Widget ").unwrap().as_str(), "Widget");
    }

    #[test]
    fn empty_or_blank_names_are_refused() {
        for raw in ["", "   ", "\t\n"] {
            let error = ProductName::parse(raw).unwrap_err();
            assert_eq!(error.code(), "BAD_USER_INPUT", "{raw:?}");
        }
    }

    #[test]
    fn names_are_limited_in_characters_not_bytes() {
        assert!(ProductName::parse(&"é".repeat(200)).is_ok());
        assert!(ProductName::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn control_characters_are_refused() {
        for raw in ["a\u{0}b", "a\nb", "a\u{7f}b"] {
            assert!(ProductName::parse(raw).is_err(), "{raw:?}");
            assert!(Sku::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn sku_keys_ignore_case_including_non_ascii() {
        assert_eq!(
            Sku::parse("ABC-1").unwrap().key(),
            Sku::parse("abc-1").unwrap().key()
        );
        assert_eq!(Sku::parse("ÉCLAIR").unwrap().key(), "éclair");
    }

    #[test]
    fn skus_are_stored_as_given_and_limited_to_64_characters() {
        assert_eq!(Sku::parse(" AbC ").unwrap().as_str(), "AbC");
        assert!(Sku::parse(&"x".repeat(64)).is_ok());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }
}
