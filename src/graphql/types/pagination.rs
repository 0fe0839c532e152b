//! Relay cursor pagination: page sizes, opaque cursors and `PageInfo`.

use async_graphql::SimpleObject;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::service::MovementPosition;

/// A page's size when the client gives no `first`.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The largest page a client can ask for; larger `first` values are capped to it.
pub const MAX_PAGE_SIZE: u64 = 100;

/// The complexity of a page: its selection costs as many times as the page can hold items, and
/// at least once (an empty page still runs its query and its `totalCount`).
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.map_or(DEFAULT_PAGE_SIZE, |first| {
        u64::try_from(first).unwrap_or(0).min(MAX_PAGE_SIZE)
    });
    1 + usize::try_from(size.max(1)).unwrap_or(usize::MAX) * child_complexity
}

/// `first` and `after`, validated.
pub struct PageRequest<C> {
    /// How many items to return.
    pub size: u64,
    /// Start after this position.
    pub after: Option<C>,
}

impl<C: Cursor> PageRequest<C> {
    /// Validates `first` (not negative; default 20; capped at 100) and decodes `after`.
    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self> {
        let size = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(first) if first < 0 => {
                return Err(Error::bad_input(format!(
                    "first must not be negative (got {first})"
                )));
            }
            Some(first) => u64::try_from(first).unwrap_or(0).min(MAX_PAGE_SIZE),
        };
        let after = after.map(C::decode).transpose()?;
        Ok(Self { size, after })
    }
}

/// Relay's `PageInfo`.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Whether items come before this page (true whenever `after` was given).
    pub has_previous_page: bool,
    /// The cursor of the first item of this page.
    pub start_cursor: Option<String>,
    /// The cursor of the last item of this page: pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// A position in a listing, encoded as an opaque string.
pub trait Cursor: Sized {
    /// The opaque string.
    fn encode(&self) -> String;
    /// Reads back an opaque string; `BAD_USER_INPUT` for anything not made by [`Cursor::encode`].
    fn decode(cursor: &str) -> Result<Self>;
}

/// Position in the product listing: the product's id.
pub struct ProductCursor(pub Uuid);

impl Cursor for ProductCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("product:{}", self.0))
    }

    fn decode(cursor: &str) -> Result<Self> {
        decode_text(cursor)
            .and_then(|text| text.strip_prefix("product:")?.parse().ok())
            .map(ProductCursor)
            .ok_or_else(|| invalid_cursor(cursor))
    }
}

/// Position in a movement listing.
pub struct MovementCursor(pub MovementPosition);

impl Cursor for MovementCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("movement:{}:{}", self.0.id, self.0.product_version))
    }

    fn decode(cursor: &str) -> Result<Self> {
        decode_text(cursor)
            .and_then(|text| {
                let (id, version) = text.strip_prefix("movement:")?.split_once(':')?;
                Some(MovementPosition {
                    id: id.parse().ok()?,
                    product_version: version.parse().ok()?,
                })
            })
            .map(MovementCursor)
            .ok_or_else(|| invalid_cursor(cursor))
    }
}

fn decode_text(cursor: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()
}

fn invalid_cursor(cursor: &str) -> Error {
    Error::bad_input(format!("'{cursor}' is not a valid cursor"))
}

/// Builds `PageInfo` for `items` fetched with one extra row past the page (`size + 1`), and
/// drops that extra row.
pub fn finish_page<T, C: Cursor>(
    items: &mut Vec<T>,
    request: &PageRequest<C>,
    cursor_of: impl Fn(&T) -> C,
) -> PageInfo {
    let has_next_page = items.len() as u64 > request.size;
    items.truncate(usize::try_from(request.size).unwrap_or(usize::MAX));
    PageInfo {
        has_next_page,
        has_previous_page: request.after.is_some(),
        start_cursor: items.first().map(|item| cursor_of(item).encode()),
        end_cursor: items.last().map(|item| cursor_of(item).encode()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_cursors_round_trip() {
        let id = Uuid::now_v7();
        let cursor = ProductCursor(id).encode();
        assert_eq!(ProductCursor::decode(&cursor).unwrap().0, id);
    }

    #[test]
    fn movement_cursors_round_trip() {
        let position = MovementPosition {
            id: Uuid::now_v7(),
            product_version: 7,
        };
        let cursor = MovementCursor(position).encode();
        assert_eq!(MovementCursor::decode(&cursor).unwrap().0, position);
    }

    #[test]
    fn foreign_or_garbled_cursors_are_bad_input() {
        let movement = MovementCursor(MovementPosition {
            id: Uuid::now_v7(),
            product_version: 1,
        })
        .encode();
        for cursor in ["", "!!!", "bm90IGEgY3Vyc29y", movement.as_str()] {
            let error = ProductCursor::decode(cursor).err().unwrap();
            assert_eq!(error.code(), "BAD_USER_INPUT", "{cursor}");
        }
    }

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        let page = |first| PageRequest::<ProductCursor>::parse(first, None);
        assert_eq!(page(None).unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(page(Some(5)).unwrap().size, 5);
        assert_eq!(page(Some(1000)).unwrap().size, MAX_PAGE_SIZE);
        assert!(page(Some(-1)).is_err());
    }
}
