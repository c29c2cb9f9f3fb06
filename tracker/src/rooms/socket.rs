//! One member's WebSocket: authenticates it (upgrade token or a first `auth` frame),
//! joins the room through the actor, then forwards frames both ways until either side
//! closes. Pings are answered here, at once, so clock sync does not queue behind the actor.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reelnet_proto::Claims;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::actor::{Cmd, Identity};
use super::bus::Joined;
use super::wire::{frame_text, server_now, ClientFrame, ServerFrame};
use super::Rooms;
use crate::api::Api;
use crate::error::ApiError;

/// Frames one connection may send at once, before [`FRAMES_PER_SEC`] paces it. The web
/// app sends a few per second at most (clock pings, play/pause/seek, buffering, chat).
const FRAME_BURST: f64 = 100.0;
/// Frames per second one connection may send once its burst is spent.
const FRAMES_PER_SEC: f64 = 20.0;

/// A connection's frame budget (a token bucket): frames beyond it are dropped here, before
/// they reach the actor or, for a member of a room another replica runs, the database
/// (each relayed frame is a `NOTIFY`).
struct FrameBudget {
    tokens: f64,
    at: Instant,
    /// A `rate_limited` error was sent since the last frame let through.
    told: bool,
}

impl FrameBudget {
    fn new(now: Instant) -> Self {
        Self {
            tokens: FRAME_BURST,
            at: now,
            told: false,
        }
    }

    /// Whether a frame arriving at `now` may pass.
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * FRAMES_PER_SEC;
        self.tokens = (self.tokens + refill).min(FRAME_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.told = false;
            true
        } else {
            false
        }
    }
}

impl Rooms {
    /// Serves one member's WebSocket until it closes. `claims` is `None` when the token did
    /// not come with the upgrade; then the first frame must be `auth`. `via`: the member
    /// node whose proxy opened it (its signature on the upgrade verified); the socket closes
    /// when that node is revoked.
    pub async fn serve(
        self,
        api: Api,
        room: String,
        claims: Option<Claims>,
        via: Option<String>,
        socket: warp::ws::WebSocket,
        cancel: CancellationToken,
    ) {
        let (mut sink, mut stream) = socket.split();
        let send_err = |code: &'static str, message: &str| {
            warp::ws::Message::text(frame_text(&ServerFrame::Error {
                code,
                message: message.to_owned(),
            }))
        };
        let claims = match claims {
            Some(c) => c,
            None => {
                let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
                let token = match first {
                    Ok(Some(Ok(msg))) => msg
                        .to_str()
                        .ok()
                        .filter(|t| t.len() <= self.config.max_frame_bytes)
                        .and_then(|t| serde_json::from_str::<ClientFrame>(t).ok())
                        .and_then(|f| match f {
                            ClientFrame::Auth { token } => Some(token),
                            _ => None,
                        }),
                    _ => None,
                };
                let checked = token
                    .ok_or_else(|| {
                        ApiError::unauthorized("missing_token", "the first frame must be auth")
                    })
                    .and_then(|t| {
                        api.authenticate_via(Some(&format!("Bearer {t}")), via.as_deref())
                    });
                match checked {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = sink.send(send_err(e.code, &e.message)).await;
                        let _ = sink.close().await;
                        return;
                    }
                }
            }
        };
        let who = match api.user(&claims) {
            Ok(u) if u.email_verified => Identity {
                user_id: claims.sub.clone(),
                name: u.display_name,
            },
            Ok(_) => {
                let _ = sink
                    .send(send_err("email_not_verified", "verify your email first"))
                    .await;
                let _ = sink.close().await;
                return;
            }
            Err(e) => {
                let _ = sink.send(send_err(e.code, &e.message)).await;
                let _ = sink.close().await;
                return;
            }
        };
        let (out_tx, mut out_rx) = mpsc::channel::<String>(256);
        let joined = match &self.bus {
            Some(bus) => bus.join(room, who, out_tx).await,
            None => match self
                .ask(|reply| Cmd::Join {
                    id: room,
                    who,
                    out: out_tx,
                    reply,
                })
                .await
            {
                Ok(r) => r.map(Joined::Local),
                Err(e) => {
                    let _ = sink.send(send_err(e.code, &e.message)).await;
                    return;
                }
            },
        };
        let link = match joined {
            Ok(link) => link,
            Err(frame) => {
                let _ = sink.send(warp::ws::Message::text(frame_text(&frame))).await;
                let _ = sink.close().await;
                return;
            }
        };
        let mut revoked = api.membership().revocations();
        if via
            .as_deref()
            .is_some_and(|n| api.membership().is_revoked(n))
        {
            self.leave(&link).await;
            let _ = sink.close().await;
            return;
        }
        let mut budget = FrameBudget::new(Instant::now());
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                gone = revoked.recv(), if via.is_some() => {
                    let ours = match gone {
                        Ok(node) => via.as_deref() == Some(node.as_str()),
                        // Missed some: look the node up.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            via.as_deref().is_some_and(|n| api.membership().is_revoked(n))
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                    };
                    if ours {
                        let _ = sink
                            .send(send_err("node_revoked", "the node this connection came through was revoked"))
                            .await;
                        break;
                    }
                },
                out = out_rx.recv() => match out {
                    Some(text) => {
                        if sink.send(warp::ws::Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                    // The actor dropped us (slow consumer or room deleted).
                    None => break,
                },
                incoming = stream.next() => {
                    let msg = match incoming {
                        Some(Ok(m)) => m,
                        _ => break,
                    };
                    if msg.is_close() {
                        break;
                    }
                    if msg.is_ping() || msg.is_pong() {
                        continue;
                    }
                    if !budget.take(Instant::now()) {
                        if !budget.told {
                            budget.told = true;
                            let _ = sink
                                .send(send_err("rate_limited", "too many frames: slow down"))
                                .await;
                        }
                        continue;
                    }
                    let t1 = server_now();
                    let text = match msg.to_str() {
                        Ok(t) => t,
                        Err(()) => {
                            let _ = sink.send(send_err("bad_frame", "frames are JSON text")).await;
                            continue;
                        }
                    };
                    if text.len() > self.config.max_frame_bytes {
                        let _ = sink
                            .send(send_err(
                                "frame_too_large",
                                &format!("frames are at most {} bytes", self.config.max_frame_bytes),
                            ))
                            .await;
                        continue;
                    }
                    let frame = match serde_json::from_str::<ClientFrame>(text) {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = sink.send(send_err("bad_frame", &e.to_string())).await;
                            continue;
                        }
                    };
                    if let ClientFrame::Ping { t0, rtt } = frame {
                        let pong = ServerFrame::Pong { t0, t1, t2: server_now() };
                        if sink.send(warp::ws::Message::text(frame_text(&pong))).await.is_err() {
                            break;
                        }
                        match rtt {
                            Some(rtt) if rtt.is_finite() && rtt >= 0.0 => {}
                            _ => continue,
                        }
                    }
                    let sent = match (&link, &self.bus) {
                        (Joined::Remote(c), Some(bus)) => bus.send(*c, text.to_owned()).await,
                        (Joined::Local(conn), _) => {
                            self.tx.send(Cmd::Frame { conn: *conn, frame }).await.is_ok()
                        }
                        (Joined::Remote(_), None) => false,
                    };
                    if !sent {
                        break;
                    }
                }
            }
        }
        self.leave(&link).await;
        let _ = sink.close().await;
    }

    async fn leave(&self, link: &Joined) {
        match (link, &self.bus) {
            (Joined::Local(conn), _) => {
                let _ = self.tx.send(Cmd::Leave { conn: *conn }).await;
            }
            (Joined::Remote(c), Some(bus)) => bus.detach(*c).await,
            (Joined::Remote(_), None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_its_burst_then_the_paced_rate() {
        let t0 = Instant::now();
        let mut b = FrameBudget::new(t0);
        let passed = (0..1000).filter(|_| b.take(t0)).count();
        assert_eq!(passed, FRAME_BURST as usize);
        // Half a second later: half a second's worth more, no more.
        let t1 = t0 + Duration::from_millis(500);
        let passed = (0..1000).filter(|_| b.take(t1)).count();
        assert_eq!(passed, (FRAMES_PER_SEC / 2.0) as usize);
        // A long pause refills the burst, never beyond it.
        let t2 = t1 + Duration::from_secs(3600);
        let passed = (0..1000).filter(|_| b.take(t2)).count();
        assert_eq!(passed, FRAME_BURST as usize);
    }
}
