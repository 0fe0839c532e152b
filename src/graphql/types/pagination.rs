//! Relay cursor pagination: page sizes, opaque cursors and `PageInfo`.

use async_graphql::SimpleObject;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::service::{MovementPosition, PageDirection};

/// A page's size when the client gives no `first`.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The largest page a client can ask for; larger `first` values are capped to it.
pub const MAX_PAGE_SIZE: u64 = 100;

/// The complexity of a page of `first` (or `last`) items: its selection costs as many times as
/// the page can hold items, and at least once (an empty page still runs its query and its
/// `totalCount`).
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.map_or(DEFAULT_PAGE_SIZE, |first| {
        u64::try_from(first).unwrap_or(0).min(MAX_PAGE_SIZE)
    });
    1 + usize::try_from(size.max(1)).unwrap_or(usize::MAX) * child_complexity
}

/// `first` / `after` (forward) or `last` / `before` (backward), validated.
pub struct PageRequest<C> {
    /// How many items to return.
    pub size: u64,
    /// The cursor the page starts from (`after` forward, `before` backward).
    pub cursor: Option<C>,
    /// Which way the page goes from the cursor.
    pub direction: PageDirection,
}

/// The arguments of a Relay connection field.
pub struct PageArguments<'a> {
    /// Items from the start (or after `after`).
    pub first: Option<i32>,
    /// Start after this cursor.
    pub after: Option<&'a str>,
    /// Items from the end (or before `before`).
    pub last: Option<i32>,
    /// End before this cursor.
    pub before: Option<&'a str>,
}

impl<C: Cursor> PageRequest<C> {
    /// Validates the page: `first` / `after` page forward, `last` / `before` backward (the two
    /// pairs do not mix); sizes are not negative, default to 20 and are capped at 100.
    pub fn parse(arguments: PageArguments<'_>) -> Result<Self> {
        let PageArguments {
            first,
            after,
            last,
            before,
        } = arguments;
        let backward = last.is_some() || before.is_some();
        if backward && (first.is_some() || after.is_some()) {
            return Err(Error::bad_input(
                "page forward with first/after or backward with last/before, not both",
            ));
        }
        let (name, requested, cursor) = if backward {
            ("last", last, before)
        } else {
            ("first", first, after)
        };
        let size = match requested {
            None => DEFAULT_PAGE_SIZE,
            Some(size) if size < 0 => {
                return Err(Error::bad_field(
                    name,
                    format!("{name} must not be negative (got {size})"),
                ));
            }
            Some(size) => u64::try_from(size).unwrap_or(0).min(MAX_PAGE_SIZE),
        };
        Ok(Self {
            size,
            cursor: cursor
                .map(C::decode)
                .transpose()
                .map_err(|error| error.on_field(if backward { "before" } else { "after" }))?,
            direction: if backward {
                PageDirection::Backward
            } else {
                PageDirection::Forward
            },
        })
    }
}

/// Relay's `PageInfo`.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Whether items come before this page (when paging forward: whenever `after` was given).
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
    // Its argument (`after` or `before`) is named by the page that reads it.
    Error::bad_input(format!("'{cursor}' is not a valid cursor"))
}

/// Builds `PageInfo` for `items` fetched with one extra row past the page (`size + 1`), and
/// drops that extra row.
pub fn finish_page<T, C: Cursor>(
    items: &mut Vec<T>,
    request: &PageRequest<C>,
    cursor_of: impl Fn(&T) -> C,
) -> PageInfo {
    // The service fetched one item more than the page, nearest the cursor first.
    let more = items.len() as u64 > request.size;
    items.truncate(usize::try_from(request.size).unwrap_or(usize::MAX));
    let (has_next_page, has_previous_page) = match request.direction {
        PageDirection::Forward => (more, request.cursor.is_some()),
        PageDirection::Backward => {
            items.reverse();
            (request.cursor.is_some(), more)
        }
    };
    PageInfo {
        has_next_page,
        has_previous_page,
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
        let page = |first, last| {
            PageRequest::<ProductCursor>::parse(PageArguments {
                first,
                after: None,
                last,
                before: None,
            })
        };
        assert_eq!(page(None, None).unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(page(Some(5), None).unwrap().size, 5);
        assert_eq!(page(Some(1000), None).unwrap().size, MAX_PAGE_SIZE);
        assert!(page(Some(-1), None).is_err());
        let backward = page(None, Some(7)).unwrap();
        assert_eq!(
            (backward.size, backward.direction),
            (7, PageDirection::Backward)
        );
        assert!(page(None, Some(-1)).is_err());
        assert!(page(Some(1), Some(1)).is_err(), "first and last do not mix");
    }
}
