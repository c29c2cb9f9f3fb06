//! What the reelnet node and tracker share at run time, so it exists once:
//!
//! - [`shutdown`]: Ctrl-C/SIGTERM, one cancellation tree with a fixed drain order
//!   (HTTP servers, then workers, then actors, then the store) and every task tracked;
//! - [`config`]: TOML loading whose errors name the file, the dotted key and the line;
//! - [`logging`]: the `tracing` subscriber both binaries install (tokens redacted);
//! - [`serve`]: a warp filter served on a bound listener until its stage is cancelled,
//!   over HTTP or HTTPS (with the plain-HTTP redirect);
//! - [`tls`]: HTTPS certificates from PEM files (reloaded on change) or ACME (renewed);
//! - [`fs`]: private data directories (0700) and secret files (0600, written atomically,
//!   refused when others may read them);
//! - [`headers`]: the security headers (CSP, nosniff, referrer, framing) of every answer;
//! - [`clock`]: wall-clock helpers (seconds and milliseconds since the Unix epoch);
//! - [`metrics`]: the Prometheus text exposition both services render;
//! - [`tmdb`]: the TMDb v3 client (size-limited answers, title and year clean-up).
//!
//! No domain logic lives here: the node and the tracker depend on this crate, never the
//! other way round, and `reelnet-proto` stays free of I/O.

pub mod clock;
pub mod config;
pub mod fs;
pub mod headers;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod shutdown;
pub mod tls;
pub mod tmdb;

pub use shutdown::{Shutdown, Stage};
