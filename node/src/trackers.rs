//! Which tracker replica this node talks to.
//!
//! A tracker may run as several stateless replicas on one PostgreSQL database
//! (`[tracker] url = ["http://t1:7070", "http://t2:7070"]`). Every node→tracker call (the
//! JWKS fetch, sign-in's code redemption and refreshes, the `/api/v1` proxy and its
//! WebSockets, membership, request claims) asks one [`Trackers`] handle for the base URL
//! to use and reports what happened, so they all move together.
//!
//! - **Current replica.** An index into the list, in an atomic: the only shared state. A
//!   call reports a failure of the replica it *used* ([`Trackers::failed`]): a transport
//!   error (connection refused, reset, timeout) or a 502/503/504 answer. The first report
//!   about the current replica moves the index to the next one (in list order, wrapping);
//!   reports about a replica that is no longer current change nothing, so a burst of
//!   requests that all failed on the dead replica moves the index once.
//! - **Within one request** ([`Trackers::send`]): a request that failed on the current
//!   replica is sent once more, to the next one, when that is safe: always when the
//!   connection could not be made (nothing reached the tracker), and for any other failure
//!   only when the request is idempotent ([`Retry::Idempotent`]: GET, HEAD, OPTIONS, PUT,
//!   DELETE). A POST whose body may have reached a tracker is never sent twice.
//! - **Back to the first.** A probe task (only with more than one replica) asks each
//!   replica's `/healthz`, in list order, every `[tracker] probe_secs` and moves the index
//!   to the first one that answers, so a recovered first replica takes the traffic back
//!   and a dead current one is left even when no request fails on it.
//!
//! Every switch is one `info` log line and is counted in `/metrics`
//! (`reelnet_tracker_replica`, `reelnet_tracker_switches_total`). With one URL nothing of
//! this changes behaviour: no probe, no retry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Most tracker replicas one node may list.
pub const MAX_TRACKERS: usize = 8;
/// Time for one health probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a list of tracker URLs is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackersError {
    #[error("no tracker URL")]
    Empty,
    #[error("at most {MAX_TRACKERS} tracker URLs")]
    TooMany,
    #[error("{0:?} is not an http:// or https:// URL")]
    Scheme(String),
    #[error("{0:?} is listed twice")]
    Duplicate(String),
    #[error(
        "public_url lists {public} URLs for {urls} tracker URLs: give one (every replica \
         behind one public name) or one per URL, in the same order"
    )]
    PublicLength { urls: usize, public: usize },
}

/// Checks a list of tracker base URLs: 1 to [`MAX_TRACKERS`], http(s), no duplicates
/// (a trailing `/` does not count).
pub fn check_urls(urls: &[String]) -> Result<(), TrackersError> {
    if urls.is_empty() {
        return Err(TrackersError::Empty);
    }
    if urls.len() > MAX_TRACKERS {
        return Err(TrackersError::TooMany);
    }
    let mut seen = Vec::with_capacity(urls.len());
    for url in urls {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(TrackersError::Scheme(url.clone()));
        }
        let trimmed = url.trim_end_matches('/');
        if seen.contains(&trimmed) {
            return Err(TrackersError::Duplicate(url.clone()));
        }
        seen.push(trimmed);
    }
    Ok(())
}

/// Which requests may be sent a second time, to the next replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Whatever failed (idempotent requests: GET, HEAD, OPTIONS, PUT, DELETE).
    Idempotent,
    /// Only when the connection could not be made (nothing was sent).
    ConnectOnly,
}

impl Retry {
    /// By HTTP method (RFC 9110 §9.2.2).
    pub fn for_method(method: &reqwest::Method) -> Self {
        use reqwest::Method;
        if [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ]
        .contains(method)
        {
            Self::Idempotent
        } else {
            Self::ConnectOnly
        }
    }
}

/// Whether an answer says the replica cannot serve now (a gateway in front of it, or the
/// tracker itself without its database).
pub fn is_unavailable(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// The tracker replicas and which one is current. Cheap to clone: every clone sees the
/// same index.
#[derive(Clone)]
pub struct Trackers {
    inner: Arc<Inner>,
}

struct Inner {
    /// Base URLs, without a trailing `/`.
    urls: Vec<String>,
    /// The browser-facing URL of each, without a trailing `/`.
    public: Vec<String>,
    current: AtomicUsize,
    /// `reelnet_tracker_replica`: mirrors `current`.
    replica: Gauge,
    /// `reelnet_tracker_switches_total`.
    switches: Counter,
}

impl std::fmt::Debug for Trackers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trackers")
            .field("urls", &self.inner.urls)
            .field("current", &self.current())
            .finish()
    }
}

impl Trackers {
    /// The replicas `urls` (tried in this order) and their browser-facing URLs `public`:
    /// empty (each is its own), one (shared by all) or one per URL.
    pub fn new(urls: &[String], public: &[String]) -> Result<Self, TrackersError> {
        check_urls(urls)?;
        let trim = |u: &String| u.trim_end_matches('/').to_owned();
        let urls: Vec<String> = urls.iter().map(trim).collect();
        let public: Vec<String> = match public.len() {
            0 => urls.clone(),
            1 => vec![trim(&public[0]); urls.len()],
            n if n == urls.len() => public.iter().map(trim).collect(),
            n => {
                return Err(TrackersError::PublicLength {
                    urls: urls.len(),
                    public: n,
                })
            }
        };
        if let Some(bad) = public
            .iter()
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            return Err(TrackersError::Scheme(bad.clone()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                urls,
                public,
                current: AtomicUsize::new(0),
                replica: Gauge::default(),
                switches: Counter::default(),
            }),
        })
    }

    /// One tracker at `url` (browsers reach it there too). A URL that is not http(s) is
    /// kept as it is: calls to it fail, as they did before replicas existed.
    pub fn single(url: &str) -> Self {
        let url = url.trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                public: vec![url.clone()],
                urls: vec![url],
                current: AtomicUsize::new(0),
                replica: Gauge::default(),
                switches: Counter::default(),
            }),
        }
    }

    /// How many replicas there are.
    pub fn len(&self) -> usize {
        self.inner.urls.len()
    }

    /// Always false: there is at least one replica.
    pub fn is_empty(&self) -> bool {
        self.inner.urls.is_empty()
    }

    /// The index of the replica in use.
    pub fn current(&self) -> usize {
        self.inner.current.load(Ordering::Acquire) % self.len().max(1)
    }

    /// The base URL of the replica in use (no trailing `/`).
    pub fn url(&self) -> &str {
        self.url_at(self.current())
    }

    /// The base URL of replica `index`.
    pub fn url_at(&self, index: usize) -> &str {
        &self.inner.urls[index % self.len()]
    }

    /// Every base URL, in order.
    pub fn urls(&self) -> &[String] {
        &self.inner.urls
    }

    /// Where browsers reach the replica in use (sign-in, account pages).
    pub fn public_url(&self) -> &str {
        &self.inner.public[self.current()]
    }

    /// Switches made so far (by failures and by the probe).
    pub fn switches(&self) -> u64 {
        self.inner.switches.get()
    }

    /// Reports that replica `used` failed a call (`why`, for the log): if it is still the
    /// current one, the next one becomes current. True if this report moved it.
    pub fn failed(&self, used: usize, why: &str) -> bool {
        if self.len() < 2 {
            return false;
        }
        let next = (used + 1) % self.len();
        self.switch(used, next, why)
    }

    /// Moves the current replica from `from` to `to`, unless someone moved it first.
    fn switch(&self, from: usize, to: usize, why: &str) -> bool {
        if from == to
            || self
                .inner
                .current
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        self.inner.replica.set(to as i64);
        self.inner.switches.inc();
        tracing::info!(
            from = %self.inner.urls[from],
            to = %self.inner.urls[to],
            reason = why,
            "tracker replica switched"
        );
        true
    }

    /// Adds `reelnet_tracker_replica` and `reelnet_tracker_switches_total` to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "reelnet_tracker_replica",
            "Index (from 0, in [tracker] url order) of the tracker replica this node talks to.",
            self.inner.replica.clone(),
        );
        registry.register(
            "reelnet_tracker_switches",
            "Switches from one tracker replica to another (failures and probes).",
            self.inner.switches.clone(),
        );
    }

    /// Sends the request `build` makes for a replica's base URL to the current replica;
    /// on a failure there, reports it and (with more than one replica, when `retry`
    /// allows) sends it once more, built afresh, to the next one. Answers the last
    /// attempt's result, 502/503/504 answers included.
    pub async fn send<F>(&self, retry: Retry, build: F) -> Result<reqwest::Response, reqwest::Error>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        let attempts = if self.len() > 1 { 2 } else { 1 };
        let mut at = self.current();
        let mut attempt = 1;
        loop {
            let result = build(self.url_at(at)).send().await;
            let last = attempt == attempts;
            match &result {
                Ok(res) if is_unavailable(res.status().as_u16()) => {
                    self.failed(at, &format!("answered {}", res.status().as_u16()));
                    if last || retry != Retry::Idempotent {
                        return result;
                    }
                }
                Ok(_) => return result,
                Err(err) if err.is_builder() => return result,
                Err(err) => {
                    self.failed(at, &err.to_string());
                    if last || !(err.is_connect() || retry == Retry::Idempotent) {
                        return result;
                    }
                }
            }
            tracing::debug!(from = %self.url_at(at), "retrying on the next tracker replica");
            at = (at + 1) % self.len();
            attempt += 1;
        }
    }

    /// One probe: the first replica, in list order, whose `/healthz` answers 2xx becomes
    /// current. Replicas after the current one are asked only when it does not answer.
    pub async fn probe_once(&self, http: &reqwest::Client) {
        let current = self.current();
        for i in 0..self.len() {
            let healthy = http
                .get(format!("{}/healthz", self.url_at(i)))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                if i != current {
                    self.switch(current, i, "probe: an earlier replica answers /healthz");
                }
                return;
            }
            if i == current {
                tracing::debug!(url = %self.url_at(i), "the current tracker replica does not answer /healthz");
            }
        }
    }

    /// Starts the probe task (none with one replica): [`Self::probe_once`] every `every`
    /// until `cancel`.
    pub fn start_probe(
        &self,
        every: Duration,
        cancel: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        if self.len() < 2 {
            return None;
        }
        let this = self.clone();
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .connect_timeout(PROBE_TIMEOUT)
            .build()
            .unwrap_or_default();
        Some(reelnet_runtime::shutdown::spawn(
            "tracker-probe",
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok::<(), std::convert::Infallible>(()),
                        _ = tick.tick() => {}
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = this.probe_once(&http) => {}
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("http://127.0.0.{}:7070", i + 1))
            .collect()
    }

    #[test]
    fn lists_are_checked() {
        assert_eq!(Trackers::new(&[], &[]).err(), Some(TrackersError::Empty));
        assert_eq!(
            Trackers::new(&urls(9), &[]).err(),
            Some(TrackersError::TooMany)
        );
        let twice = vec!["http://a:1".to_owned(), "http://a:1/".to_owned()];
        assert!(matches!(
            Trackers::new(&twice, &[]),
            Err(TrackersError::Duplicate(_))
        ));
        let ftp = vec!["ftp://a".to_owned()];
        assert!(matches!(
            Trackers::new(&ftp, &[]),
            Err(TrackersError::Scheme(_))
        ));
        assert_eq!(
            Trackers::new(&urls(3), &urls(2)).err(),
            Some(TrackersError::PublicLength { urls: 3, public: 2 })
        );
        // One public URL is shared; one per URL follows the current replica.
        let t = Trackers::new(&urls(2), &["https://tracker.example/".to_owned()]).unwrap();
        assert_eq!(t.public_url(), "https://tracker.example");
        let public = vec![
            "https://a.example".to_owned(),
            "https://b.example".to_owned(),
        ];
        let t = Trackers::new(&urls(2), &public).unwrap();
        assert_eq!(t.public_url(), "https://a.example");
        t.failed(0, "test");
        assert_eq!(t.public_url(), "https://b.example");
        assert_eq!(t.url(), "http://127.0.0.2:7070");
    }

    #[test]
    fn a_failure_of_the_current_replica_moves_on_once() {
        let t = Trackers::new(&urls(3), &[]).unwrap();
        let mut registry = Registry::default();
        t.register(&mut registry);
        assert_eq!(t.current(), 0);
        assert!(t.failed(0, "connection refused"));
        assert_eq!(t.current(), 1);
        // Late reports about replica 0 (requests that were in flight there) change nothing.
        assert!(!t.failed(0, "connection refused"));
        assert!(!t.failed(0, "connection refused"));
        assert_eq!(t.current(), 1);
        assert!(t.failed(1, "answered 503"));
        assert_eq!(t.current(), 2);
        // The last one wraps around to the first.
        assert!(t.failed(2, "timed out"));
        assert_eq!(t.current(), 0);
        assert_eq!(t.switches(), 3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("reelnet_tracker_switches_total 3"), "{text}");
        assert!(text.contains("reelnet_tracker_replica 0"), "{text}");
        // One replica: nothing to move to.
        let one = Trackers::single("http://127.0.0.1:7070/");
        assert!(!one.failed(0, "refused"));
        assert_eq!(one.url(), "http://127.0.0.1:7070");
    }

    /// A real HTTP server on loopback answering `/healthz` with `status`.
    async fn server(status: u16, cancel: &CancellationToken) -> String {
        use warp::Filter;
        let route = warp::get().and(warp::path("healthz")).map(move || {
            warp::reply::with_status("ok", warp::http::StatusCode::from_u16(status).unwrap())
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = cancel.clone();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move { stop.cancelled().await })
                .run(),
        );
        format!("http://{addr}")
    }

    /// A loopback address nothing listens on.
    async fn closed() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    #[tokio::test]
    async fn requests_go_to_the_next_replica_and_the_probe_brings_them_back() {
        let cancel = CancellationToken::new();
        let dead = closed().await;
        let sick = server(503, &cancel).await;
        let up = server(200, &cancel).await;
        let http = reqwest::Client::new();

        // A GET to a replica that refuses connections is answered by the next one.
        let t = Trackers::new(&[dead.clone(), up.clone()], &[]).unwrap();
        let res = t
            .send(Retry::ConnectOnly, |base| {
                http.post(format!("{base}/healthz"))
            })
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "the POST reached the live replica");
        assert_eq!(t.current(), 1);

        // A 503 is retried on the next replica for an idempotent request only.
        let t = Trackers::new(&[sick.clone(), up.clone()], &[]).unwrap();
        let res = t
            .send(Retry::ConnectOnly, |base| {
                http.get(format!("{base}/healthz"))
            })
            .await
            .unwrap();
        assert_eq!(res.status(), 503, "a POST-like request is not sent twice");
        assert_eq!(t.current(), 1, "but the replica is left");
        let t = Trackers::new(&[sick.clone(), up.clone()], &[]).unwrap();
        let res = t
            .send(Retry::Idempotent, |base| {
                http.get(format!("{base}/healthz"))
            })
            .await
            .unwrap();
        assert_eq!(res.status(), 200);

        // The probe moves to the first replica that answers, in list order.
        let t = Trackers::new(&[dead.clone(), sick.clone(), up.clone()], &[]).unwrap();
        t.probe_once(&http).await;
        assert_eq!(t.current(), 2, "first healthy in order");
        let t = Trackers::new(&[up.clone(), dead.clone()], &[]).unwrap();
        t.failed(0, "test");
        assert_eq!(t.current(), 1);
        t.probe_once(&http).await;
        assert_eq!(t.current(), 0, "back to the first once it answers");
        assert_eq!(t.switches(), 2);
        // Nothing answers: the index stays.
        let t = Trackers::new(&[dead.clone(), sick.clone()], &[]).unwrap();
        t.failed(0, "test");
        t.probe_once(&http).await;
        assert_eq!(t.current(), 1);
        cancel.cancel();
    }
}
