//! Monthly billing periods anchored on the account's creation day.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

/// `[start, end)` of one billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

/// The anchor's day and time placed in the given month; short months clamp the day
/// (an account created on the 31st renews on the 30th of April, 28th/29th of February).
fn boundary(anchor: DateTime<Utc>, year: i32, month: u32) -> DateTime<Utc> {
    let day = anchor.day().min(days_in_month(year, month));
    let date = NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default();
    Utc.from_utc_datetime(&date.and_time(anchor.time()))
}

fn shift(year: i32, month: u32, by: i32) -> (i32, u32) {
    let idx = year * 12 + month as i32 - 1 + by;
    (idx.div_euclid(12), idx.rem_euclid(12) as u32 + 1)
}

impl BillingPeriod {
    /// The period containing `now` for an account anchored at `anchor`.
    pub fn containing(anchor: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let now = now.max(anchor);
        let (y, m) = (now.year(), now.month());
        let this = boundary(anchor, y, m);
        let (sy, sm) = if now >= this { (y, m) } else { shift(y, m, -1) };
        let start = boundary(anchor, sy, sm);
        let (ey, em) = shift(sy, sm, 1);
        BillingPeriod {
            start,
            end: boundary(anchor, ey, em),
        }
    }

    /// A stable key for counters (`2026-11-25`).
    pub fn key(&self) -> String {
        self.start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn anchored_periods() {
        let a = t("2026-01-31T10:00:00Z");
        let p = BillingPeriod::containing(a, t("2026-02-15T00:00:00Z"));
        assert_eq!(p.start, a);
        assert_eq!(p.end, t("2026-02-28T10:00:00Z"));
        let p = BillingPeriod::containing(a, t("2026-03-01T00:00:00Z"));
        assert_eq!(p.start, t("2026-02-28T10:00:00Z"));
        assert_eq!(p.end, t("2026-03-31T10:00:00Z"));
        let p = BillingPeriod::containing(a, t("2026-12-31T10:00:00Z"));
        assert_eq!(p.start, t("2026-12-31T10:00:00Z"));
        assert_eq!(p.end, t("2027-01-31T10:00:00Z"));
        let p = BillingPeriod::containing(a, t("2026-12-31T09:59:59Z"));
        assert_eq!(p.start, t("2026-11-30T10:00:00Z"));
    }
}
