//! Signals and task spawning come from `reelnet_runtime::shutdown`; this name stays while
//! the modules that spawn actor tasks are moved over.
pub use reelnet_runtime::shutdown::{signal, spawn};
