//! The `tracing` subscriber both binaries install: `RUST_LOG` (default `info`), to stderr
//! so stdout stays for command output, human-readable or JSON lines (`--log-json`).

/// Installs the global subscriber. Call once, at the start of `main`.
pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
