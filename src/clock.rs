//! Today's date (UTC), which decides when lots expire. Tests move it; the server uses the
//! system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use chrono::{Datelike, NaiveDate, Utc};

/// No override: the system clock's date.
const SYSTEM: i32 = i32::MIN;

/// The date lots are judged by. Clones share one setting.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Days since 0001-01-01 of the date in force, or [`SYSTEM`].
    fixed_day: Arc<AtomicI32>,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            fixed_day: Arc::new(AtomicI32::new(SYSTEM)),
        }
    }
}

impl Clock {
    /// Today in UTC, or the date set with [`Clock::set_today`].
    pub fn today(&self) -> NaiveDate {
        match self.fixed_day.load(Ordering::Relaxed) {
            SYSTEM => Utc::now().date_naive(),
            day => {
                NaiveDate::from_num_days_from_ce_opt(day).unwrap_or_else(|| Utc::now().date_naive())
            }
        }
    }

    /// Makes `today` return `date` from now on (`None`: the system clock again).
    pub fn set_today(&self, date: Option<NaiveDate>) {
        let day = date.map_or(SYSTEM, |date| date.num_days_from_ce());
        self.fixed_day.store(day, Ordering::Relaxed);
    }
}
