//! A plain-HTTP front for a test tracker that records every request and passes it on (a
//! node's tracker URL points here), for the gateway's proxy and sign-in tests. Include with
//! `#[path = "common/front.rs"] mod front;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::SinkExt;
use warp::http::{HeaderMap, Method};
use warp::Filter;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A plain-HTTP front for the tracker that records every request and passes it on (the
/// node's tracker URL points here). WebSockets are not passed on: an upgrade to
/// `/api/v1/wsprobe` is recorded and answered by the front itself (one `ok` frame).
pub struct Front {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Front {
    pub async fn start(tracker: &str) -> Front {
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let tracker = tracker.to_owned();
        let log = seen.clone();
        let probe = {
            let log = seen.clone();
            warp::path!("api" / "v1" / "wsprobe")
                .and(warp::ws())
                .and(warp::query::raw().or(warp::any().map(String::new)).unify())
                .and(warp::header::headers_cloned())
                .map(move |ws: warp::ws::Ws, query: String, headers: HeaderMap| {
                    log.lock().unwrap().push(Seen {
                        method: Method::GET,
                        path: "/api/v1/wsprobe".to_owned(),
                        query,
                        headers,
                        body: Bytes::new(),
                    });
                    ws.on_upgrade(|mut socket| async move {
                        let _ = socket.send(warp::ws::Message::text("ok")).await;
                        let _ = socket.close().await;
                    })
                })
        };
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: HeaderMap,
                      body: Bytes| {
                    let client = client.clone();
                    let tracker = tracker.clone();
                    let log = log.clone();
                    async move {
                        log.lock().unwrap().push(Seen {
                            method: method.clone(),
                            path: path.as_str().to_owned(),
                            query: query.clone(),
                            headers: headers.clone(),
                            body: body.clone(),
                        });
                        let mut url = format!("{tracker}{}", path.as_str());
                        if !query.is_empty() {
                            url = format!("{url}?{query}");
                        }
                        let mut req = client.request(method, url).body(body);
                        for (name, value) in &headers {
                            if name != "host" && name != "content-length" {
                                req = req.header(name, value);
                            }
                        }
                        let res = req.send().await.unwrap();
                        let mut out = warp::http::Response::builder().status(res.status());
                        for (name, value) in res.headers() {
                            if name != "content-length" && name != "transfer-encoding" {
                                out = out.header(name, value);
                            }
                        }
                        out.body(res.bytes().await.unwrap().to_vec()).unwrap()
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        {
            let stop = stop.clone();
            tokio::spawn(
                warp::serve(probe.or(route))
                    .incoming(listener)
                    .graceful(async move { stop.cancelled().await })
                    .run(),
            );
        }
        Front { url, seen, stop }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests the front passed on whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .count()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
