//! Wall-clock time as the rest of the program speaks it: whole seconds since the Unix epoch, and
//! HTTP dates. Its own module so that sync, serving and the CLI share it without depending on
//! each other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `unix` (seconds) as an HTTP date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`; times before the
/// epoch are shown as the epoch.
pub fn http_date(unix: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
