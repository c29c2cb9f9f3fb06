//! Wall-clock time as the tracker records it (unix seconds and milliseconds). The lowest
//! module: everything may use it, it uses nothing. (To become `reelnet_runtime::clock`.)

/// Unix seconds now.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// Unix milliseconds now (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
