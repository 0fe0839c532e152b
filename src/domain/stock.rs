//! Quantities, stock levels and reasons.

use super::MAX_STOCK;
use crate::error::{Error, Result};

/// The units of one stock change: at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    /// Validates a raw quantity.
    pub fn parse(raw: i64) -> Result<Self> {
        if raw <= 0 {
            return Err(Error::bad_field(
                "quantity",
                format!("quantity must be greater than 0 (got {raw})"),
            ));
        }
        Ok(Self(raw))
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A stock figure or threshold: 0 to [`MAX_STOCK`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockLevel(i64);

impl StockLevel {
    /// Validates a raw level; `field` names it in the error message.
    pub fn parse(field: &str, raw: i64) -> Result<Self> {
        if raw < 0 {
            return Err(Error::bad_field(
                field,
                format!("{field} must not be negative (got {raw})"),
            ));
        }
        if raw > MAX_STOCK {
            return Err(Error::StockLimitExceeded);
        }
        Ok(Self(raw))
    }

    /// The level.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Why stock changed: free text, trimmed, at most 500 characters; blank means none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// The longest reason accepted, in characters.
    pub const MAX_CHARS: usize = 500;

    /// Validates an optional raw reason; `None` or blank gives `None`.
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>> {
        Ok(parse_note("reason", raw, Self::MAX_CHARS)?.map(Self))
    }

    /// The reason text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The reason text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The caller's reference for a reservation (an order or cart id): trimmed, at most 200
/// characters; blank means none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference(String);

impl Reference {
    /// The longest reference accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates an optional raw reference; `None` or blank gives `None`.
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>> {
        Ok(parse_note("reference", raw, Self::MAX_CHARS)?.map(Self))
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a reservation holds its units: 1 second to 7 days; 15 minutes when not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservationTtl(i64);

impl ReservationTtl {
    /// The TTL when the caller gives none, in seconds.
    pub const DEFAULT_SECONDS: i64 = 15 * 60;
    /// The longest TTL, in seconds.
    pub const MAX_SECONDS: i64 = 7 * 24 * 60 * 60;

    /// Validates an optional TTL in seconds.
    pub fn parse(seconds: Option<i64>) -> Result<Self> {
        let seconds = seconds.unwrap_or(Self::DEFAULT_SECONDS);
        if !(1..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(Error::bad_field(
                "ttlSeconds",
                format!(
                    "ttlSeconds must be from 1 to {} (got {seconds})",
                    Self::MAX_SECONDS
                ),
            ));
        }
        Ok(Self(seconds))
    }

    /// The TTL in seconds.
    pub fn seconds(self) -> i64 {
        self.0
    }
}

/// Optional free text: trimmed, blank is `None`, at most `max_chars`, and no control characters
/// but newlines and tabs (NUL above all, which PostgreSQL cannot store).
fn parse_note(field: &str, raw: Option<&str>, max_chars: usize) -> Result<Option<String>> {
    let Some(trimmed) = raw.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if trimmed.chars().count() > max_chars {
        return Err(Error::bad_field(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::bad_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_must_be_positive() {
        assert_eq!(Quantity::parse(1).unwrap().get(), 1);
        for raw in [0, -1, i64::from(i32::MIN)] {
            assert_eq!(Quantity::parse(raw).unwrap_err().code(), "BAD_USER_INPUT");
        }
    }

    #[test]
    fn stock_levels_are_bounded_by_zero_and_the_cap() {
        assert!(StockLevel::parse("stock", 0).is_ok());
        assert!(StockLevel::parse("stock", MAX_STOCK).is_ok());
        assert_eq!(
            StockLevel::parse("stock", -1).unwrap_err().code(),
            "BAD_USER_INPUT"
        );
        assert_eq!(
            StockLevel::parse("stock", MAX_STOCK + 1)
                .unwrap_err()
                .code(),
            "STOCK_LIMIT_EXCEEDED"
        );
    }

    #[test]
    fn reservation_ttls_default_to_15_minutes_and_are_bounded() {
        assert_eq!(ReservationTtl::parse(None).unwrap().seconds(), 900);
        assert!(ReservationTtl::parse(Some(0)).is_err());
        assert!(ReservationTtl::parse(Some(ReservationTtl::MAX_SECONDS + 1)).is_err());
    }

    #[test]
    fn blank_reasons_are_none_and_long_ones_are_refused() {
        assert_eq!(Reason::parse(None).unwrap(), None);
        assert_eq!(Reason::parse(Some("  ")).unwrap(), None);
        assert_eq!(
            Reason::parse(Some(" restock "))
                .unwrap()
                .unwrap()
                .into_string(),
            "restock"
        );
        assert!(Reason::parse(Some(&"r".repeat(501))).is_err());
        assert!(Reason::parse(Some("a\u{0}b")).is_err());
    }
}
