//! Wall-clock time as plain integers, the unit every record and token carries.
//! A clock before 1970 reads as 0 rather than failing.

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let (s, ms) = (unix_secs(), unix_ms());
        assert!(s > 1_700_000_000);
        assert!(ms / 1000 >= s && ms / 1000 - s <= 1);
    }
}
