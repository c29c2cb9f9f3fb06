//! Test support shared by the node's and the tracker's integration tests (a dev-dependency
//! only; never part of a binary):
//!
//! - [`Smtp`]: a real SMTP server (Python's aiosmtpd from `$REELNET_PYTHON`, as set by
//!   `scripts/env.sh`; `scripts/setup.sh` installs it) on a loopback port the kernel chose,
//!   storing every message in a Maildir, with waits for a message and its link.
//! - [`wait_for`] ([`wait_for_every`]): the one polling helper (the value and the time it
//!   took).
//! - [`split`] and [`access`]: JSON response helpers.
//! - [`read_line_after`] / [`line_after`]: (waits for) a line a child process printed, e.g.
//!   the address it got for port 0.
//! - [`pebble::Pebble`]: a real ACME CA (Let's Encrypt's Pebble) whose DNS answers
//!   127.0.0.1 for every name, to order certificates with validated challenges.
//! - [`postgres::Postgres`]: a real PostgreSQL (the distribution's binaries, run as the
//!   `postgres` user when root) in a temp dir, with a synchronous standby, kill -9, restart
//!   and promotion for storage and failover tests.
//! - [`free_port`]: the racy bind-and-release, only for ports that must be known before a
//!   process starts and that it cannot report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod pebble;
pub mod postgres;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Polls `check` every 100 ms until it yields `Some`; answers the value and the time it
/// took, or panics after `limit` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_every(what, limit, Duration::from_millis(100), check).await
}

/// [`wait_for`], polling every `every`.
pub async fn wait_for_every<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        tokio::time::sleep(every).await;
    }
}

/// A loopback TCP port that was free a moment ago (bind to port 0, read it, release it).
/// Racy: another process may take it before it is used. Only for a port that must be known
/// before the process that binds it starts and that the process cannot report; everything
/// else binds port 0 and reports what it got.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What follows `needle` (trimmed) on the first line containing it in the file at `path`
/// after its first `from` bytes, if there is such a line yet.
pub fn line_after(path: &Path, from: u64, needle: &str) -> Option<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let tail = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    tail.lines().find_map(|l| {
        l.find(needle)
            .map(|i| l[i + needle.len()..].trim().to_owned())
    })
}

/// Waits (up to `limit`) until [`line_after`] finds `needle`, and answers what follows it.
/// For the line a child process prints once it has bound its port (its output sent to a log
/// file). `alive` is asked between polls; when it says the process exited, this panics with
/// the file's tail.
pub async fn read_line_after(
    path: &Path,
    from: u64,
    needle: &str,
    limit: Duration,
    mut alive: impl FnMut() -> bool,
) -> String {
    let start = Instant::now();
    loop {
        if let Some(rest) = line_after(path, from, needle) {
            return rest;
        }
        let tail = || {
            let text = std::fs::read(path).unwrap_or_default();
            let text =
                String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        // Read again after `alive`: the process may have printed the line and then exited.
        if !alive() {
            if let Some(rest) = line_after(path, from, needle) {
                return rest;
            }
            panic!("process exited before printing {needle:?}:\n{}", tail());
        }
        assert!(
            start.elapsed() < limit,
            "no {needle:?} in {} after {limit:?}:\n{}",
            path.display(),
            tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A response's status and JSON body (`Null` when empty, a string when not JSON).
pub async fn split(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// The access token of a login (or refresh) body.
pub fn access(login: &Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

/// aiosmtpd's Maildir handler on a socket bound to port 0; prints the port once listening.
const SMTP_SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

async def main():
    handler = Mailbox(sys.argv[1])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// A real SMTP server on loopback that stores every message in a Maildir.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
}

impl Smtp {
    /// Starts aiosmtpd (`$REELNET_PYTHON`, else `python3`) with its Maildir under `dir`, on
    /// a port it binds itself (port 0) and reports.
    pub fn start(dir: &Path) -> Smtp {
        let python = std::env::var("REELNET_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let maildir = dir.join("maildir");
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(SMTP_SERVER)
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start aiosmtpd with {python} ({e}); run scripts/setup.sh")
            });
        let mut line = String::new();
        // The pipe stays open (with the child) so a later print cannot fail.
        let read = BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line);
        let Some(port) = read.ok().and_then(|_| line.trim().parse::<u16>().ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("aiosmtpd did not start; is it installed for {python}? (scripts/setup.sh)");
        };
        Smtp {
            port,
            maildir,
            child,
        }
    }

    /// Every message delivered so far, as text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    /// Waits (20 s at most) for a message to `to` whose text contains `subject` (`""`: any
    /// message) and returns the link in it that contains `needle`, decoded from
    /// quoted-printable if need be.
    pub async fn wait_for_link(&self, to: &str, subject: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for msg in self.messages() {
                let unfolded = msg
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                if !unfolded.contains(&format!("To: {to}")) || !unfolded.contains(subject) {
                    continue;
                }
                if let Some(link) = unfolded
                    .split_whitespace()
                    .find(|w| w.starts_with("http") && w.contains(needle))
                {
                    return link.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no email to {to} about {subject:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many messages went to `to`.
    pub fn count_to(&self, to: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.contains(&format!("To: {to}")))
            .count()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The permission bits of `path` (panics naming the path when it cannot be read).
#[cfg(unix)]
pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Sets the permission bits of `path`.
#[cfg(unix)]
pub fn set_file_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
