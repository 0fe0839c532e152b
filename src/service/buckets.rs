//! A product's buckets (its stock per location and lot) as read under the product's lock, and
//! the rules for changing them: where units are taken from (locations by priority, lots
//! first-expiring first, expired units never), where they are added, held and released.
//!
//! Everything here works in memory: a rule either fails and changes nothing, or changes the
//! buckets and says how (one [`Allocation`] per bucket touched). [`super::locked`] stores the
//! result once, in the transaction that holds the product's lock.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::domain::LotCode;
use crate::entity::{location, stock_bucket};
use crate::error::{Error, Result};

/// What one change did to one bucket. `quantity` is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Allocation {
    pub bucket_id: Uuid,
    pub location_id: Uuid,
    pub lot_code: String,
    pub quantity: i64,
    pub stock_before: i64,
    pub stock_after: i64,
}

/// Whether a bucket must be written back, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dirty {
    Clean,
    Changed,
    New,
}

/// One bucket and the priority of its location.
#[derive(Clone, Debug)]
struct Held {
    row: stock_bucket::Model,
    priority: i32,
    location_code: String,
    dirty: Dirty,
}

/// The lot a receipt goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotInput {
    /// The lot's code.
    pub code: LotCode,
    /// Its last good day, if it expires.
    pub expires_on: Option<NaiveDate>,
}

/// Where units may be taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source<'a> {
    /// Any location, in priority order.
    Anywhere,
    /// One location.
    Location(Uuid),
    /// One lot (or, with an empty code, the lot-less stock) of one location.
    Bucket(Uuid, &'a str),
}

/// A product's buckets, loaded whole under its lock.
#[derive(Clone, Debug)]
pub(super) struct Buckets {
    product_id: Uuid,
    held: Vec<Held>,
}

impl Buckets {
    /// Reads every bucket of `product_id` with its location (one query).
    pub(super) async fn load(transaction: &impl ConnectionTrait, product_id: Uuid) -> Result<Self> {
        let rows = stock_bucket::Entity::find()
            .filter(stock_bucket::Column::ProductId.eq(product_id))
            .find_also_related(location::Entity)
            .all(transaction)
            .await?;
        let held = rows
            .into_iter()
            .map(|(row, location)| {
                let location =
                    location.ok_or_else(|| Error::internal("a bucket's location is missing"))?;
                Ok(Held {
                    row,
                    priority: location.priority,
                    location_code: location.code_key,
                    dirty: Dirty::Clean,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { product_id, held })
    }

    /// Reads every bucket of each of `product_ids` with its location, in chunks of
    /// [`INSERT_CHUNK`] products per query; a product without buckets gets an empty set.
    ///
    /// [`INSERT_CHUNK`]: super::locked::INSERT_CHUNK
    pub(super) async fn load_many(
        transaction: &impl ConnectionTrait,
        product_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Self>> {
        let mut all: HashMap<Uuid, Self> = product_ids
            .iter()
            .map(|&product_id| {
                (
                    product_id,
                    Self {
                        product_id,
                        held: Vec::new(),
                    },
                )
            })
            .collect();
        for chunk in product_ids.chunks(super::locked::INSERT_CHUNK) {
            let rows = stock_bucket::Entity::find()
                .filter(stock_bucket::Column::ProductId.is_in(chunk.iter().copied()))
                .find_also_related(location::Entity)
                .all(transaction)
                .await?;
            for (row, location) in rows {
                let location =
                    location.ok_or_else(|| Error::internal("a bucket's location is missing"))?;
                let buckets = all
                    .get_mut(&row.product_id)
                    .ok_or_else(|| Error::internal("a bucket of another product was read"))?;
                buckets.held.push(Held {
                    row,
                    priority: location.priority,
                    location_code: location.code_key,
                    dirty: Dirty::Clean,
                });
            }
        }
        Ok(all)
    }

    /// The buckets of a product being created: one empty lot-less bucket in `main`, not yet
    /// stored. Returns them and that bucket's id.
    pub(super) fn for_new_product(
        product_id: Uuid,
        main: &location::Model,
        created_at: DateTime<Utc>,
    ) -> (Self, Uuid) {
        let row = stock_bucket::Model {
            id: Uuid::now_v7(),
            product_id,
            location_id: main.id,
            lot_code: String::new(),
            expires_on: None,
            stock: 0,
            reserved: 0,
            expired: false,
            created_at,
        };
        let id = row.id;
        let held = Held {
            row,
            priority: main.priority,
            location_code: main.code_key.clone(),
            dirty: Dirty::New,
        };
        (
            Self {
                product_id,
                held: vec![held],
            },
            id,
        )
    }

    /// The buckets as they are now.
    pub(super) fn rows(&self) -> impl Iterator<Item = &stock_bucket::Model> {
        self.held.iter().map(|held| &held.row)
    }

    /// The buckets that were created or changed, and whether each is new.
    pub(super) fn changed(&self) -> impl Iterator<Item = (&stock_bucket::Model, bool)> {
        self.held
            .iter()
            .filter(|held| held.dirty != Dirty::Clean)
            .map(|held| (&held.row, held.dirty == Dirty::New))
    }

    /// Forgets which buckets changed (after they were stored).
    pub(super) fn mark_stored(&mut self) {
        for held in &mut self.held {
            held.dirty = Dirty::Clean;
        }
    }

    /// Units on hand over all buckets.
    pub(super) fn stock(&self) -> i64 {
        self.rows().map(|row| row.stock).sum()
    }

    /// Units held by reservations over all buckets.
    pub(super) fn reserved(&self) -> i64 {
        self.rows().map(|row| row.reserved).sum()
    }

    /// Units in expired lots over all buckets.
    pub(super) fn expired(&self) -> i64 {
        self.rows().map(stock_bucket::Model::expired_units).sum()
    }

    /// Units that can be taken from `source`.
    pub(super) fn available(&self, source: Source<'_>) -> i64 {
        self.held
            .iter()
            .filter(|held| in_source(&held.row, source))
            .map(|held| held.row.available())
            .sum()
    }

    /// Lots that passed their date as of `today` but are not yet marked expired.
    pub(super) fn newly_past_date(&self, today: NaiveDate) -> Vec<Uuid> {
        self.rows()
            .filter(|row| !row.expired && row.is_past_date(today))
            .map(|row| row.id)
            .collect()
    }

    /// Marks a lot expired (its reservations must have been released first).
    pub(super) fn mark_expired(&mut self, bucket_id: Uuid) -> Result<stock_bucket::Model> {
        let held = self.find_mut(bucket_id)?;
        if held.row.reserved != 0 {
            return Err(Error::internal(
                "an expiring lot still holds reserved units",
            ));
        }
        held.row.expired = true;
        held.touch();
        Ok(held.row.clone())
    }

    /// Takes `quantity` available units from `source`: locations by priority, within a
    /// location first-expiring lots first (lots without a date last, ties oldest first).
    /// `INSUFFICIENT_STOCK` (changing nothing) when `source` has fewer.
    pub(super) fn take(&mut self, source: Source<'_>, quantity: i64) -> Result<Vec<Allocation>> {
        let plan = self.plan(source, quantity, None)?;
        Ok(plan
            .into_iter()
            .map(|(index, units)| {
                let held = &mut self.held[index];
                let before = held.row.stock;
                held.row.stock -= units;
                held.touch();
                held.allocation(-units, before)
            })
            .collect())
    }

    /// Holds `quantity` available units of `source` for a reservation, chosen as [`take`]
    /// would take them, from lots still good on `good_through` (the day the reservation runs
    /// out): a hold never rests on a lot that expires before its checkout can end. Returns the
    /// units held per bucket.
    ///
    /// [`take`]: Buckets::take
    pub(super) fn hold(
        &mut self,
        source: Source<'_>,
        quantity: i64,
        good_through: NaiveDate,
    ) -> Result<Vec<(Uuid, i64)>> {
        let plan = self.plan(source, quantity, Some(good_through))?;
        Ok(plan
            .into_iter()
            .map(|(index, units)| {
                let held = &mut self.held[index];
                held.row.reserved += units;
                held.touch();
                (held.row.id, units)
            })
            .collect())
    }

    /// Gives back units a reservation held in a bucket.
    pub(super) fn release(&mut self, bucket_id: Uuid, quantity: i64) -> Result<()> {
        let held = self.find_mut(bucket_id)?;
        if held.row.reserved < quantity {
            return Err(Error::internal(
                "a bucket holds fewer reserved units than a reservation",
            ));
        }
        held.row.reserved -= quantity;
        held.touch();
        Ok(())
    }

    /// Takes the units a reservation held in a bucket.
    pub(super) fn take_held(&mut self, bucket_id: Uuid, quantity: i64) -> Result<Allocation> {
        self.release(bucket_id, quantity)?;
        let held = self.find_mut(bucket_id)?;
        let before = held.row.stock;
        held.row.stock -= quantity;
        Ok(held.allocation(-quantity, before))
    }

    /// Removes `quantity` units that no reservation holds from one bucket, expired ones
    /// included (a write-off). `INSUFFICIENT_STOCK` when the bucket has fewer; `BAD_USER_INPUT`
    /// when there is no such lot.
    pub(super) fn write_off(
        &mut self,
        location_id: Uuid,
        lot_code: &str,
        quantity: i64,
    ) -> Result<Allocation> {
        let Some(index) = self.position(location_id, lot_code) else {
            return Err(if lot_code.is_empty() {
                Error::InsufficientStock {
                    available: 0,
                    requested: quantity,
                }
            } else {
                Error::bad_field(
                    "lotCode",
                    format!("the product has no lot '{lot_code}' in this location"),
                )
            });
        };
        let held = &mut self.held[index];
        let removable = held.row.stock - held.row.reserved;
        if removable < quantity {
            return Err(Error::InsufficientStock {
                available: removable,
                requested: quantity,
            });
        }
        let before = held.row.stock;
        held.row.stock -= quantity;
        held.touch();
        Ok(held.allocation(-quantity, before))
    }

    /// Adds `quantity` units to a lot (or the lot-less stock) of `location`, creating the
    /// bucket on first use. A lot code keeps one date for the product in every location: the
    /// same code with another `expires_on` is `BAD_USER_INPUT`. A lot already past its date
    /// takes the units as expired.
    pub(super) fn add(
        &mut self,
        location: &location::Model,
        lot: Option<&LotInput>,
        quantity: i64,
        today: NaiveDate,
        created_at: DateTime<Utc>,
    ) -> Result<Allocation> {
        let code = lot.map_or("", |lot| lot.code.as_str());
        if let Some(lot) = lot {
            self.check_lot_date(lot)?;
        }
        let index = match self.position(location.id, code) {
            Some(index) => index,
            None => {
                let expires_on = lot.and_then(|lot| lot.expires_on);
                let row = stock_bucket::Model {
                    id: Uuid::now_v7(),
                    product_id: self.product_id,
                    location_id: location.id,
                    lot_code: code.to_owned(),
                    expires_on,
                    stock: 0,
                    reserved: 0,
                    expired: expires_on.is_some_and(|day| day < today),
                    created_at,
                };
                self.held.push(Held {
                    row,
                    priority: location.priority,
                    location_code: location.code_key.clone(),
                    dirty: Dirty::New,
                });
                self.held.len() - 1
            }
        };
        let held = &mut self.held[index];
        let before = held.row.stock;
        held.row.stock += quantity;
        held.touch();
        Ok(held.allocation(quantity, before))
    }

    /// Units on hand in one lot (or the lot-less stock) of a location: 0 when there is no such
    /// bucket.
    pub(super) fn on_hand(&self, location_id: Uuid, lot_code: &str) -> i64 {
        self.position(location_id, lot_code)
            .map_or(0, |index| self.held[index].row.stock)
    }

    /// Sets the units on hand in one lot (or the lot-less stock) of `location` to `target`, as
    /// a count reports them: up by [`Buckets::add`]'s rules, down from that bucket alone
    /// (expired units included, reserved ones never). `None` when the bucket already holds
    /// `target`. `INSUFFICIENT_STOCK` when `target` is below what reservations hold there;
    /// `BAD_USER_INPUT` for a lot code that has another date. A refusal changes nothing.
    pub(super) fn set_on_hand(
        &mut self,
        location: &location::Model,
        lot: Option<&LotInput>,
        target: i64,
        today: NaiveDate,
        created_at: DateTime<Utc>,
    ) -> Result<Option<Allocation>> {
        let code = lot.map_or("", |lot| lot.code.as_str());
        let current = self.on_hand(location.id, code);
        if target > current {
            return self
                .add(location, lot, target - current, today, created_at)
                .map(Some);
        }
        if let Some(lot) = lot {
            self.check_lot_date(lot)?;
        }
        if target == current {
            return Ok(None);
        }
        let Some(index) = self.position(location.id, code) else {
            return Ok(None);
        };
        let held = &mut self.held[index];
        if target < held.row.reserved {
            return Err(Error::InsufficientStock {
                available: held.row.stock - held.row.reserved,
                requested: held.row.stock - target,
            });
        }
        let before = held.row.stock;
        held.row.stock = target;
        held.touch();
        Ok(Some(held.allocation(target - before, before)))
    }

    /// `BAD_USER_INPUT` when the product already has `lot`'s code with another date.
    fn check_lot_date(&self, lot: &LotInput) -> Result<()> {
        let code = lot.code.as_str();
        match self
            .rows()
            .find(|row| row.lot_code == code && row.expires_on != lot.expires_on)
        {
            Some(other) => Err(Error::bad_field(
                "lot",
                format!(
                    "lot '{code}' of this product expires on {}, not {}",
                    describe_date(other.expires_on),
                    describe_date(lot.expires_on)
                ),
            )),
            None => Ok(()),
        }
    }

    /// Which buckets [`Buckets::take`] would take `quantity` units from, and how many each;
    /// with `good_through`, only lots still good that day count.
    fn plan(
        &self,
        source: Source<'_>,
        quantity: i64,
        good_through: Option<NaiveDate>,
    ) -> Result<Vec<(usize, i64)>> {
        let lasts = |row: &stock_bucket::Model| {
            good_through.is_none_or(|day| row.expires_on.is_none_or(|last| last >= day))
        };
        let mut candidates: Vec<usize> = (0..self.held.len())
            .filter(|&index| {
                let row = &self.held[index].row;
                in_source(row, source) && row.available() > 0 && lasts(row)
            })
            .collect();
        candidates.sort_by(|&left, &right| taking_order(&self.held[left], &self.held[right]));
        let mut plan = Vec::new();
        let mut wanted = quantity;
        for index in candidates {
            if wanted == 0 {
                break;
            }
            let units = self.held[index].row.available().min(wanted);
            plan.push((index, units));
            wanted -= units;
        }
        if wanted > 0 {
            return Err(Error::InsufficientStock {
                available: quantity - wanted,
                requested: quantity,
            });
        }
        Ok(plan)
    }

    fn position(&self, location_id: Uuid, lot_code: &str) -> Option<usize> {
        self.held
            .iter()
            .position(|held| held.row.location_id == location_id && held.row.lot_code == lot_code)
    }

    fn find_mut(&mut self, bucket_id: Uuid) -> Result<&mut Held> {
        self.held
            .iter_mut()
            .find(|held| held.row.id == bucket_id)
            .ok_or_else(|| Error::internal("a bucket of the locked product is missing"))
    }
}

impl Held {
    fn touch(&mut self) {
        if self.dirty == Dirty::Clean {
            self.dirty = Dirty::Changed;
        }
    }

    fn allocation(&self, quantity: i64, stock_before: i64) -> Allocation {
        Allocation {
            bucket_id: self.row.id,
            location_id: self.row.location_id,
            lot_code: self.row.lot_code.clone(),
            quantity,
            stock_before,
            stock_after: self.row.stock,
        }
    }
}

fn in_source(row: &stock_bucket::Model, source: Source<'_>) -> bool {
    match source {
        Source::Anywhere => true,
        Source::Location(location_id) => row.location_id == location_id,
        Source::Bucket(location_id, lot_code) => {
            row.location_id == location_id && row.lot_code == lot_code
        }
    }
}

/// Locations by priority (then code), and within one: the first-expiring lot first, lots
/// without a date last, ties by age (then id, so the order is total).
fn taking_order(left: &Held, right: &Held) -> Ordering {
    left.priority
        .cmp(&right.priority)
        .then_with(|| left.location_code.cmp(&right.location_code))
        .then_with(|| left.row.location_id.cmp(&right.row.location_id))
        .then_with(|| match (left.row.expires_on, right.row.expires_on) {
            (Some(left), Some(right)) => left.cmp(&right),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| left.row.created_at.cmp(&right.row.created_at))
        .then_with(|| left.row.id.cmp(&right.row.id))
}

fn describe_date(date: Option<NaiveDate>) -> String {
    date.map_or_else(|| "never".to_owned(), |date| date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(code: &str, priority: i32) -> location::Model {
        location::Model {
            id: Uuid::now_v7(),
            code: code.into(),
            code_key: code.to_lowercase(),
            name: code.into(),
            priority,
            created_at: Utc::now(),
            archived_at: None,
        }
    }

    fn lot(code: &str, expires_on: Option<&str>) -> LotInput {
        LotInput {
            code: LotCode::parse(code).unwrap(),
            expires_on: expires_on.map(|day| day.parse().unwrap()),
        }
    }

    fn today() -> NaiveDate {
        "2026-06-01".parse().unwrap()
    }

    fn empty() -> Buckets {
        Buckets {
            product_id: Uuid::now_v7(),
            held: Vec::new(),
        }
    }

    #[test]
    fn takes_by_priority_then_first_expiring_then_undated() {
        let mut buckets = empty();
        let (main, store) = (location("MAIN", 0), location("STORE", 5));
        let at = Utc::now();
        buckets.add(&store, None, 10, today(), at).unwrap();
        buckets.add(&main, None, 3, today(), at).unwrap();
        buckets
            .add(
                &main,
                Some(&lot("LATE", Some("2026-09-01"))),
                4,
                today(),
                at,
            )
            .unwrap();
        buckets
            .add(
                &main,
                Some(&lot("SOON", Some("2026-07-01"))),
                2,
                today(),
                at,
            )
            .unwrap();

        let taken = buckets.take(Source::Anywhere, 11).unwrap();

        let order: Vec<(&str, i64)> = taken
            .iter()
            .map(|allocation| (allocation.lot_code.as_str(), allocation.quantity))
            .collect();
        assert_eq!(order, [("SOON", -2), ("LATE", -4), ("", -3), ("", -2)]);
        assert_eq!(taken[3].location_id, store.id);
        assert_eq!(buckets.stock(), 8);
    }

    #[test]
    fn expired_and_held_units_are_never_taken_and_a_refusal_changes_nothing() {
        let mut buckets = empty();
        let main = location("MAIN", 0);
        let at = Utc::now();
        buckets
            .add(&main, Some(&lot("OLD", Some("2026-05-31"))), 5, today(), at)
            .unwrap();
        buckets.add(&main, None, 4, today(), at).unwrap();
        buckets.hold(Source::Anywhere, 3, today()).unwrap();
        assert_eq!(buckets.expired(), 5);
        assert_eq!(buckets.available(Source::Anywhere), 1);

        let refusal = buckets.take(Source::Anywhere, 2).unwrap_err();

        assert_eq!(refusal.code(), "INSUFFICIENT_STOCK");
        assert_eq!((buckets.stock(), buckets.reserved()), (9, 3));
        assert_eq!(buckets.write_off(main.id, "OLD", 5).unwrap().stock_after, 0);
    }

    #[test]
    fn a_lot_code_keeps_one_date() {
        let mut buckets = empty();
        let (main, store) = (location("MAIN", 0), location("STORE", 1));
        let at = Utc::now();
        buckets
            .add(&main, Some(&lot("L1", Some("2026-07-01"))), 1, today(), at)
            .unwrap();
        let error = buckets
            .add(&store, Some(&lot("L1", Some("2026-07-02"))), 1, today(), at)
            .unwrap_err();
        assert_eq!(error.code(), "BAD_USER_INPUT");
        assert!(
            buckets
                .add(&store, Some(&lot("L1", Some("2026-07-01"))), 1, today(), at)
                .is_ok()
        );
    }
}
