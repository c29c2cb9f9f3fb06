//! Watch-party WebSocket helpers: connect to a tracker's room, send frames, wait for typed
//! frames.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::Tracker;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

pub async fn create(t: &Tracker, token: &str, movie: &str) -> (u16, Value) {
    t.call(
        Method::POST,
        "/api/v1/rooms",
        token,
        Some(json!({ "movie_id": movie })),
    )
    .await
}

pub async fn connect(t: &Tracker, room: &str, token: &str) -> Ws {
    let url = format!(
        "ws://127.0.0.1:{}/api/v1/rooms/{room}/ws?access_token={token}",
        t.port
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON frame, or `None` after `wait` with nothing (or on close).
pub async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The next frame of type `ty`, skipping others.
pub async fn expect(ws: &mut Ws, ty: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = next(ws, left)
            .await
            .unwrap_or_else(|| panic!("no {ty} frame"));
        if f["type"] == ty {
            return f;
        }
    }
}

/// The next `members` frame about `event`, skipping others.
pub async fn presence(ws: &mut Ws, event: &str) -> Value {
    loop {
        let m = expect(ws, "members").await;
        if m["event"] == event {
            return m;
        }
    }
}

/// Asserts that no frame of type `ty` arrives within `wait`.
pub async fn none_of(ws: &mut Ws, ty: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    while let Some(f) = next(ws, deadline.saturating_duration_since(Instant::now())).await {
        assert_ne!(f["type"], ty, "unexpected {f}");
    }
}
