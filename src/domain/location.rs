//! Location codes and names, lot codes, and the days a query may look ahead.

use super::product::{fold_case, parse_text};
use crate::error::{Error, Result};

/// A location's code (`MAIN`, `STORE-12`): trimmed, 1 to 32 characters, no control
/// characters; unique case-insensitively through [`LocationCode::key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationCode(String);

impl LocationCode {
    /// The longest code accepted, in characters.
    pub const MAX_CHARS: usize = 32;

    /// Validates a raw code.
    pub fn parse(raw: &str) -> Result<Self> {
        parse_text("code", raw, Self::MAX_CHARS).map(Self)
    }

    /// The code as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form uniqueness and look-ups use.
    pub fn key(&self) -> String {
        fold_case(&self.0)
    }
}

/// A location's name: trimmed, 1 to 200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationName(String);

impl LocationName {
    /// Validates a raw name.
    pub fn parse(raw: &str) -> Result<Self> {
        parse_text("name", raw, 200).map(Self)
    }

    /// The name as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lot (batch) code: trimmed, 1 to 64 characters, no control characters; compared exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotCode(String);

impl LotCode {
    /// The longest code accepted, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates a raw lot code.
    pub fn parse(raw: &str) -> Result<Self> {
        parse_text("code", raw, Self::MAX_CHARS)
            .map(Self)
            .map_err(|error| error.under("lot"))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many days ahead `expiringLots` looks: 0 (today) to 3,650.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DaysAhead(i64);

impl DaysAhead {
    /// The most days accepted.
    pub const MAX: i64 = 3650;

    /// Validates a raw number of days.
    pub fn parse(raw: i64) -> Result<Self> {
        if !(0..=Self::MAX).contains(&raw) {
            return Err(Error::bad_field(
                "withinDays",
                format!("withinDays must be between 0 and {} (got {raw})", Self::MAX),
            ));
        }
        Ok(Self(raw))
    }

    /// The days.
    pub fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_codes_are_unique_regardless_of_case_and_at_most_32_characters() {
        assert_eq!(LocationCode::parse(" Main ").unwrap().key(), "main");
        assert!(LocationCode::parse(&"x".repeat(32)).is_ok());
        assert!(LocationCode::parse(&"x".repeat(33)).is_err());
        assert!(LocationCode::parse("  ").is_err());
    }

    #[test]
    fn days_ahead_are_bounded() {
        assert!(DaysAhead::parse(0).is_ok());
        assert!(DaysAhead::parse(-1).is_err());
        assert!(DaysAhead::parse(3651).is_err());
    }
}
