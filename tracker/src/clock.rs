//! Wall-clock time as the tracker records it (unix seconds and milliseconds): the names
//! the tracker's modules use for `reelnet_runtime::clock`. The lowest module: everything
//! may use it, it uses nothing of the tracker.

pub use reelnet_runtime::clock::{unix_ms as now_ms, unix_secs as now_secs};
