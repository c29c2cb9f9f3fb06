//! The `tracing` subscriber both binaries install: `RUST_LOG` (default `info`), to stderr
//! so stdout stays for command output, human-readable or JSON lines (`--log-json`).
//!
//! Credentials never reach the log: browsers put the access token (a JWT) in
//! `?access_token=` on WebSocket URLs and playback tokens in `?token=` on HLS URLs, and a
//! URL can end up in a log line in many ways (a span's referer, a proxy's error, an HTTP
//! client's error that names the URL). Every line is therefore passed through [`redact`]
//! on its way out, which replaces the value of any `…token=` with `REDACTED`.

use std::borrow::Cow;
use std::io::Write;

/// What replaces a token's value.
pub const REDACTED: &str = "REDACTED";

/// Installs the global subscriber. Call once, at the start of `main`.
pub fn init(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only on a terminal: a file or a journal gets plain text (in which
        // field names are not split by escape codes, so redaction sees `token=`).
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| RedactingStderr(Vec::new()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Collects one formatted event and writes it to stderr, redacted, when dropped.
struct RedactingStderr(Vec<u8>);

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingStderr {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        // A log line that cannot be written has nowhere else to go.
        let _ = std::io::stderr().lock().write_all(redact(&text).as_bytes());
    }
}

/// Where a token's value ends: URL and field separators, quotes, brackets, whitespace.
fn ends_value(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '&' | '"' | '\'' | ';' | ',' | ')' | '>' | '#' | ']' | '}' | '\\' | '`'
        )
}

/// `text` with the value of every `…token=` (`access_token=`, `refresh_token=`, `token=`,
/// any case) replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    const KEY: &str = "token=";
    let lower = text.to_ascii_lowercase();
    if !lower.contains(KEY) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(KEY) {
        let value_start = search + found + KEY.len();
        let value_len = text[value_start..]
            .find(ends_value)
            .unwrap_or(text.len() - value_start);
        if value_len > 0 {
            out.push_str(&text[rest..value_start]);
            out.push_str(REDACTED);
            rest = value_start + value_len;
        }
        search = value_start + value_len;
    }
    out.push_str(&text[rest..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_urls_and_fields_are_redacted() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln-_";
        for (input, want) in [
            (
                format!("url=ws://t/api/v1/rooms/r/ws?access_token={jwt} err=x"),
                "url=ws://t/api/v1/rooms/r/ws?access_token=REDACTED err=x".to_owned(),
            ),
            (
                format!("GET /hls/m/master.m3u8?token={jwt}&x=1"),
                "GET /hls/m/master.m3u8?token=REDACTED&x=1".to_owned(),
            ),
            (
                format!(r#"{{"url":"http://t/a?b=1&ACCESS_TOKEN={jwt}","n":1}}"#),
                r#"{"url":"http://t/a?b=1&ACCESS_TOKEN=REDACTED","n":1}"#.to_owned(),
            ),
            (
                format!("error sending request for url (http://t/x?access_token={jwt})"),
                "error sending request for url (http://t/x?access_token=REDACTED)".to_owned(),
            ),
            (
                format!("a refresh_token={jwt}\nb token={jwt}\n"),
                "a refresh_token=REDACTED\nb token=REDACTED\n".to_owned(),
            ),
            ("no secrets here".to_owned(), "no secrets here".to_owned()),
            (
                "empty token= and token=".to_owned(),
                "empty token= and token=".to_owned(),
            ),
        ] {
            let got = redact(&input);
            assert_eq!(got, want);
            assert!(!got.contains(jwt));
        }
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(redact("café token=é€x y"), "café token=REDACTED y");
    }
}
