//! When to order: pure functions of the certificate's validity, the configured renewal window,
//! the CA's renewal information and the failures so far (time in, time out), so the policy can
//! be tested without a clock or a CA.

use std::time::{Duration, SystemTime};

/// The least time between two orders, whatever the certificate says: a certificate whose
/// notBefore is backdated (or a tiny lifetime, or a ratio near 1) must not make the loop
/// hammer the CA.
pub const MIN_BETWEEN_ORDERS: Duration = Duration::from_secs(10);
/// The first retry after a failure; each further failure doubles it up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
pub const MAX_RETRY: Duration = Duration::from_secs(3600);
/// The least time between two attempts after a failure, even close to expiry.
pub const MIN_RETRY: Duration = Duration::from_secs(10);

/// The CA's suggested renewal window (ARI, RFC 9773).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
}

/// When a certificate valid from `not_before` to `not_after` is due: when less than `ratio`
/// of its lifetime is left, or earlier if the CA's window (`ari`) says so, at the point
/// `random` (0..1) of that window, as RFC 9773 §4.2 asks (so that many clients do not come at
/// once). The earlier of the two wins: the CA may pull renewal forward (e.g. before a mass
/// revocation), and a window set by the administrator is never overridden by a later one.
pub fn renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    ratio: f64,
    ari: Option<Window>,
    random: f64,
) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let by_ratio = not_before + lifetime.mul_f64((1.0 - ratio).clamp(0.0, 1.0));
    match ari {
        Some(window) if window.start <= window.end => {
            let width = window.end.duration_since(window.start).unwrap_or_default();
            by_ratio.min(window.start + width.mul_f64(random.clamp(0.0, 1.0)))
        }
        _ => by_ratio,
    }
}

/// The next attempt after a certificate was issued at `now`: at its renewal time, but never
/// sooner than [`MIN_BETWEEN_ORDERS`] from now.
pub fn after_success(now: SystemTime, renewal: SystemTime) -> SystemTime {
    renewal.max(now + MIN_BETWEEN_ORDERS)
}

/// The next attempt after the `failures`-th failure in a row (1 for the first) at `now`:
/// [`FIRST_RETRY`] doubling up to [`MAX_RETRY`], spread by `random` (0..1) over ±20% so that
/// servers that failed together do not retry together. While a certificate is in use, no
/// later than halfway to its `not_after` (retries get denser as expiry nears), and never
/// sooner than [`MIN_RETRY`].
pub fn after_failure(
    now: SystemTime,
    failures: u32,
    not_after: Option<SystemTime>,
    random: f64,
) -> SystemTime {
    let doublings = failures.saturating_sub(1).min(16);
    let base = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    let mut delay = base.mul_f64(0.8 + 0.4 * random.clamp(0.0, 1.0));
    if let Some(not_after) = not_after {
        let left = not_after.duration_since(now).unwrap_or_default();
        delay = delay.min(left / 2);
    }
    now + delay.max(MIN_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    #[test]
    fn renews_when_the_ratio_of_lifetime_is_left() {
        let due = renewal_time(at(0), at(90 * 86_400), 1.0 / 3.0, None, 0.5);
        let expected = at(60 * 86_400);
        let off = due
            .duration_since(expected)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .unwrap();
        assert!(off < Duration::from_secs(1), "{off:?}");
    }

    #[test]
    fn a_ratio_near_one_renews_right_after_issuance() {
        // Five years, as pebble issues: 0.9999999 leaves about 16 s after notBefore.
        let five_years = 5 * 365 * 86_400;
        let due = renewal_time(at(0), at(five_years), 0.9999999, None, 0.0);
        let after = due.duration_since(at(0)).unwrap();
        assert!(
            after > Duration::from_secs(10) && after < Duration::from_secs(20),
            "{after:?}"
        );
    }

    #[test]
    fn an_earlier_ari_window_wins_at_a_random_point() {
        let window = Window {
            start: at(10 * 86_400),
            end: at(12 * 86_400),
        };
        let start = renewal_time(at(0), at(90 * 86_400), 1.0 / 3.0, Some(window), 0.0);
        assert_eq!(start, window.start);
        let middle = renewal_time(at(0), at(90 * 86_400), 1.0 / 3.0, Some(window), 0.5);
        assert_eq!(middle, at(11 * 86_400));
        let end = renewal_time(at(0), at(90 * 86_400), 1.0 / 3.0, Some(window), 1.0);
        assert_eq!(end, window.end);
    }

    #[test]
    fn a_later_ari_window_does_not_delay_the_configured_one() {
        let window = Window {
            start: at(80 * 86_400),
            end: at(85 * 86_400),
        };
        let due = renewal_time(at(0), at(90 * 86_400), 0.5, Some(window), 0.5);
        assert_eq!(due, at(45 * 86_400));
    }

    #[test]
    fn an_inverted_window_is_ignored() {
        let window = Window {
            start: at(20 * 86_400),
            end: at(10 * 86_400),
        };
        let due = renewal_time(at(0), at(90 * 86_400), 0.5, Some(window), 0.5);
        assert_eq!(due, at(45 * 86_400));
    }

    #[test]
    fn a_backdated_certificate_cannot_make_orders_back_to_back() {
        // notBefore an hour ago, renewal time long past: still ten seconds between orders.
        let now = at(3600);
        let due = renewal_time(at(0), at(3600 + 60), 0.9, None, 0.5);
        assert!(due < now);
        assert_eq!(after_success(now, due), now + MIN_BETWEEN_ORDERS);
        let later = at(30 * 86_400);
        assert_eq!(after_success(now, later), later);
    }

    #[test]
    fn failures_back_off_doubling_to_a_cap() {
        let now = at(0);
        let delay = |n, random| {
            after_failure(now, n, None, random)
                .duration_since(now)
                .unwrap()
        };
        assert_eq!(delay(1, 0.5), FIRST_RETRY);
        assert_eq!(delay(2, 0.5), FIRST_RETRY * 2);
        assert_eq!(delay(3, 0.5), FIRST_RETRY * 4);
        assert_eq!(delay(7, 0.5), MAX_RETRY);
        assert_eq!(delay(1000, 0.5), MAX_RETRY);
        // Jitter: within ±20%.
        assert_eq!(delay(1, 0.0), FIRST_RETRY.mul_f64(0.8));
        assert_eq!(delay(1, 1.0), FIRST_RETRY.mul_f64(1.2));
        assert!(delay(1000, 1.0) <= MAX_RETRY.mul_f64(1.2));
    }

    #[test]
    fn retries_get_denser_near_expiry_but_keep_a_floor() {
        let now = at(0);
        let delay = |not_after| {
            after_failure(now, 10, Some(not_after), 0.5)
                .duration_since(now)
                .unwrap()
        };
        assert_eq!(delay(at(30 * 86_400)), MAX_RETRY);
        assert_eq!(delay(at(1200)), Duration::from_secs(600));
        assert_eq!(delay(at(4)), MIN_RETRY);
        // Already expired: the floor, never a busy loop.
        let expired = after_failure(now, 10, Some(now - DAY), 0.5);
        assert_eq!(expired.duration_since(now).unwrap(), MIN_RETRY);
    }
}
