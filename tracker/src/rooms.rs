//! Watch-party rooms: the authoritative play state of every room and the WebSocket protocol
//! that shares it.
//!
//! One actor task ([`Rooms::start`]) owns every room: movie, host, settings, play state
//! (playing or paused, position at a server timestamp, rate), connected members (with who is
//! buffering) and chat rate limits. HTTP handlers and WebSocket connection tasks talk to it
//! through the cloneable [`Rooms`] handle, so no room state is shared behind locks.
//!
//! Commands (play, pause, seek) become state changes scheduled at
//! `now + max(2 × highest member RTT, min_lead_ms)` server time and are broadcast to every
//! member, so everyone switches at the same instant. A member that reports `buffering` while
//! the room plays pauses the room until every member is ready again — but only up to
//! `ready_timeout_ms`; after that the room goes on and the slow member is left to catch up by
//! itself for a while (a room never hangs waiting for one member).
//!
//! Room metadata and the last state are persisted in the store's `rooms` tree (through the
//! writer task, newest `seq` wins), and restored on start, so a tracker restart loses no room;
//! clients reconnect and resync. A room with nobody connected for `idle_timeout_secs` is
//! deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reelnet_proto::{Claims, MovieId, Tier};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use warp::http::StatusCode;

use crate::api::Api;
use crate::error::ApiError;
use crate::store::{codec, Store, StoreError};

/// The `[rooms]` section of the tracker's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Whether only premium users may create (host) rooms.
    pub premium_only: bool,
    /// Rooms one user may host at once.
    pub max_rooms_per_user: usize,
    /// Connections one room accepts at once.
    pub max_members: usize,
    /// Rooms the tracker keeps at once.
    pub max_rooms: usize,
    /// How long the room waits for buffering members before it goes on without them, ms.
    pub ready_timeout_ms: u64,
    /// Smallest delay between a command and its scheduled execution, ms.
    pub min_lead_ms: u64,
    /// Largest such delay (caps 2 × RTT of a very slow member), ms.
    pub max_lead_ms: u64,
    /// Largest WebSocket text frame accepted, bytes (larger ones get an error frame).
    pub max_frame_bytes: usize,
    /// Longest chat message, characters.
    pub chat_max_chars: usize,
    /// Chat messages one connection may send per `chat_window_ms`.
    pub chat_burst: usize,
    /// The chat rate-limit window, ms.
    pub chat_window_ms: u64,
    /// A room with nobody connected for this long is deleted, seconds.
    pub idle_timeout_secs: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            premium_only: true,
            max_rooms_per_user: 3,
            max_members: 16,
            max_rooms: 10_000,
            ready_timeout_ms: 3000,
            min_lead_ms: 300,
            max_lead_ms: 3000,
            max_frame_bytes: 4096,
            chat_max_chars: 500,
            chat_burst: 5,
            chat_window_ms: 5000,
            idle_timeout_secs: 3600,
        }
    }
}

/// The play state of a room, effective from server time `at` (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlayState {
    pub playing: bool,
    /// Seconds into the movie at `at`.
    pub position: f64,
    /// Server time (unix ms, fractional) from which this state holds.
    pub at: f64,
    /// Playback rate while playing.
    pub rate: f64,
}

impl PlayState {
    /// Where playback should be at server time `t` (ms).
    pub fn position_at(&self, t: f64) -> f64 {
        if self.playing && t > self.at {
            self.position + (t - self.at) / 1000.0 * self.rate
        } else {
            self.position
        }
    }
}

/// What is stored per room (and answered by `GET /api/v1/rooms/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRecord {
    pub id: String,
    pub movie_id: String,
    pub host: String,
    pub host_name: String,
    pub anyone_can_control: bool,
    pub created_at: u64,
    pub state: PlayState,
    /// Bumped on every change; the newest record wins in storage.
    pub seq: u64,
}

/// A room as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    pub id: String,
    pub movie_id: String,
    pub host: String,
    pub host_name: String,
    pub anyone_can_control: bool,
    pub created_at: u64,
    pub invite_url: String,
    pub ws_path: String,
    pub state: PlayState,
    pub seq: u64,
    pub members: Vec<MemberView>,
}

/// One connected member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub host: bool,
    pub buffering: bool,
}

/// `POST /api/v1/rooms` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    pub movie_id: String,
    #[serde(default)]
    pub anyone_can_control: bool,
}

/// Frames a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Authenticates a connection opened without `access_token` (must be the first frame).
    Auth {
        token: String,
    },
    /// Clock sync: `t0` is the client's send time; `rtt` its latest measured round trip, ms.
    Ping {
        t0: f64,
        #[serde(default)]
        rtt: Option<f64>,
    },
    Play {
        #[serde(default)]
        position: Option<f64>,
    },
    Pause {
        #[serde(default)]
        position: Option<f64>,
    },
    Seek {
        position: f64,
    },
    Buffering,
    Ready,
    Chat {
        text: String,
    },
    Settings {
        anyone_can_control: bool,
    },
}

/// Frames the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame after joining: the whole room.
    Welcome {
        you: String,
        room: Box<RoomView>,
        server_time: f64,
    },
    /// Clock sync answer: `t1` server receive time, `t2` server send time (unix ms).
    Pong {
        t0: f64,
        t1: f64,
        t2: f64,
    },
    /// A new play state, effective at `state.at`.
    State {
        state: PlayState,
        seq: u64,
        by: Option<String>,
        reason: &'static str,
    },
    /// Who is here (sent on join, leave, buffering and ready).
    Members {
        members: Vec<MemberView>,
        event: &'static str,
        user_id: String,
    },
    Chat {
        user_id: String,
        name: String,
        text: String,
        at: f64,
    },
    Settings {
        anyone_can_control: bool,
    },
    Error {
        code: &'static str,
        message: String,
    },
}

fn frame_text(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| "{\"type\":\"error\"}".to_owned())
}

/// Server time, unix ms with sub-millisecond precision.
pub fn server_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

type ConnId = u64;

/// Who a connection belongs to.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
}

enum Cmd {
    Create {
        host: Identity,
        movie_id: String,
        anyone_can_control: bool,
        reply: oneshot::Sender<Result<RoomRecord, ApiError>>,
    },
    Get {
        id: String,
        reply: oneshot::Sender<Option<RoomView>>,
    },
    Join {
        id: String,
        who: Identity,
        out: mpsc::Sender<String>,
        reply: oneshot::Sender<Result<ConnId, ServerFrame>>,
    },
    Frame {
        conn: ConnId,
        frame: ClientFrame,
    },
    Leave {
        conn: ConnId,
    },
}

/// The handle to the rooms actor.
#[derive(Clone)]
pub struct Rooms {
    tx: mpsc::Sender<Cmd>,
    store: Store,
    config: RoomsConfig,
    web_url: String,
}

impl Rooms {
    /// Restores the stored rooms and starts the actor (and its persister); both stop on
    /// `cancel`. Run the two returned futures as tasks.
    pub fn start(
        config: RoomsConfig,
        web_url: String,
        store: Store,
        cancel: CancellationToken,
    ) -> (
        Self,
        impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
        impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(1024);
        let (ptx, prx) = mpsc::channel(256);
        let mut rooms = BTreeMap::new();
        for item in store.trees().rooms.iter() {
            match item
                .map_err(StoreError::from)
                .and_then(|(_, v)| codec::decode::<RoomRecord>(&v))
            {
                Ok(rec) => {
                    rooms.insert(rec.id.clone(), Room::new(rec));
                }
                Err(err) => tracing::warn!(%err, "skipping an unreadable stored room"),
            }
        }
        tracing::info!(rooms = rooms.len(), "rooms restored");
        let actor = Actor {
            config: config.clone(),
            web_url: web_url.clone(),
            rooms,
            next_conn: 1,
            conns: HashMap::new(),
            dirty: BTreeSet::new(),
            persist: ptx,
        };
        let handle = Self {
            tx,
            store: store.clone(),
            config,
            web_url,
        };
        (
            handle,
            actor.run(rx, cancel.clone()),
            persister(store, prx, cancel),
        )
    }

    /// The rooms configuration.
    pub fn config(&self) -> &RoomsConfig {
        &self.config
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ApiError::internal("rooms are shutting down"))?;
        rx.await
            .map_err(|_| ApiError::internal("rooms are shutting down"))
    }

    /// `POST /api/v1/rooms`: creates a room hosted by the caller; answers once it is durable.
    pub async fn create(
        &self,
        api: &Api,
        claims: &Claims,
        req: CreateRoom,
    ) -> Result<RoomView, ApiError> {
        if !claims.email_verified {
            return Err(ApiError::forbidden(
                "email_not_verified",
                "verify your email address before hosting a room",
            ));
        }
        if self.config.premium_only && claims.tier != Tier::Premium {
            return Err(ApiError::forbidden(
                "premium_required",
                "hosting a watch party needs a premium subscription",
            ));
        }
        let movie = MovieId::from_str(&req.movie_id)
            .map_err(|e| ApiError::bad_request("invalid_movie_id", e.to_string()))?;
        let user = api.user(claims)?;
        let host = Identity {
            user_id: claims.sub.clone(),
            name: user.display_name,
        };
        let rec = self
            .ask(|reply| Cmd::Create {
                host,
                movie_id: movie.as_str().to_owned(),
                anyone_can_control: req.anyone_can_control,
                reply,
            })
            .await??;
        put_if_newer(&self.store, rec.clone()).await?;
        Ok(view(&rec, &self.web_url, Vec::new()))
    }

    /// `GET /api/v1/rooms/{id}`.
    pub async fn get(&self, id: &str) -> Result<RoomView, ApiError> {
        let id = id.to_owned();
        self.ask(|reply| Cmd::Get { id, reply })
            .await?
            .ok_or_else(|| ApiError::not_found("no such room"))
    }

    /// Serves one member's WebSocket until it closes. `claims` is `None` when the token did
    /// not come with the upgrade; then the first frame must be `auth`.
    pub async fn serve(
        self,
        api: Api,
        room: String,
        claims: Option<Claims>,
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
                    .and_then(|t| api.authenticate(Some(&format!("Bearer {t}"))));
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
        let joined = self
            .ask(|reply| Cmd::Join {
                id: room,
                who,
                out: out_tx,
                reply,
            })
            .await;
        let conn = match joined {
            Ok(Ok(conn)) => conn,
            Ok(Err(frame)) => {
                let _ = sink.send(warp::ws::Message::text(frame_text(&frame))).await;
                let _ = sink.close().await;
                return;
            }
            Err(e) => {
                let _ = sink.send(send_err(e.code, &e.message)).await;
                return;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
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
                    if self.tx.send(Cmd::Frame { conn, frame }).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = self.tx.send(Cmd::Leave { conn }).await;
        let _ = sink.close().await;
    }
}

fn view(rec: &RoomRecord, web_url: &str, members: Vec<MemberView>) -> RoomView {
    RoomView {
        id: rec.id.clone(),
        movie_id: rec.movie_id.clone(),
        host: rec.host.clone(),
        host_name: rec.host_name.clone(),
        anyone_can_control: rec.anyone_can_control,
        created_at: rec.created_at,
        invite_url: format!("{}/room/{}", web_url.trim_end_matches('/'), rec.id),
        ws_path: format!("/api/v1/rooms/{}/ws", rec.id),
        state: rec.state,
        seq: rec.seq,
        members,
    }
}

/// Writes `rec` unless the stored record is newer; answers once durable.
async fn put_if_newer(store: &Store, rec: RoomRecord) -> Result<(), StoreError> {
    store
        .write(move |trees| {
            if let Some(old) = trees.rooms.get(rec.id.as_bytes())? {
                if let Ok(old) = codec::decode::<RoomRecord>(&old) {
                    if old.seq > rec.seq {
                        return Ok(());
                    }
                }
            }
            trees
                .rooms
                .insert(rec.id.as_bytes(), codec::encode(&rec)?)?;
            Ok(())
        })
        .await
}

enum Persist {
    Put(RoomRecord),
    Delete(String),
}

/// Writes room changes in order through the store's writer.
async fn persister(
    store: Store,
    mut rx: mpsc::Receiver<Persist>,
    cancel: CancellationToken,
) -> Result<(), StoreError> {
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            _ = cancel.cancelled() => None,
        };
        let job = match job {
            Some(j) => j,
            None => {
                // Drain what is queued so the last states are durable.
                while let Ok(j) = rx.try_recv() {
                    apply(&store, j).await;
                }
                return Ok(());
            }
        };
        apply(&store, job).await;
    }
}

async fn apply(store: &Store, job: Persist) {
    let res = match job {
        Persist::Put(rec) => put_if_newer(store, rec).await,
        Persist::Delete(id) => {
            store
                .write(move |trees| {
                    trees.rooms.remove(id.as_bytes())?;
                    Ok(())
                })
                .await
        }
    };
    if let Err(err) = res {
        tracing::warn!(%err, "cannot persist a room");
    }
}

struct Conn {
    room: String,
    who: Identity,
    out: mpsc::Sender<String>,
    buffering: bool,
    /// Past the ready timeout: the room does not wait for this member until then.
    ignored_until: Option<Instant>,
    rtt_ms: f64,
    chat: VecDeque<Instant>,
}

struct Waiting {
    deadline: Instant,
}

struct Room {
    rec: RoomRecord,
    conns: BTreeSet<ConnId>,
    waiting: Option<Waiting>,
    empty_since: Option<Instant>,
}

impl Room {
    fn new(rec: RoomRecord) -> Self {
        Self {
            rec,
            conns: BTreeSet::new(),
            waiting: None,
            empty_since: Some(Instant::now()),
        }
    }
}

struct Actor {
    config: RoomsConfig,
    web_url: String,
    rooms: BTreeMap<String, Room>,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    dirty: BTreeSet<String>,
    persist: mpsc::Sender<Persist>,
}

fn err(code: &'static str, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error {
        code,
        message: message.into(),
    }
}

fn valid_position(p: f64) -> Result<f64, ServerFrame> {
    if p.is_finite() && (0.0..=1.0e6).contains(&p) {
        Ok(p)
    } else {
        Err(err(
            "bad_position",
            "position must be a number of seconds in 0..=1000000",
        ))
    }
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        cancel: CancellationToken,
    ) -> Result<(), StoreError> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => self.tick(),
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
            }
        }
        self.flush_dirty();
        Ok(())
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Create {
                host,
                movie_id,
                anyone_can_control,
                reply,
            } => {
                let _ = reply.send(self.create(host, movie_id, anyone_can_control));
            }
            Cmd::Get { id, reply } => {
                let v = self
                    .rooms
                    .get(&id)
                    .map(|r| view(&r.rec, &self.web_url, self.members(r)));
                let _ = reply.send(v);
            }
            Cmd::Join {
                id,
                who,
                out,
                reply,
            } => {
                let _ = reply.send(self.join(id, who, out));
            }
            Cmd::Frame { conn, frame } => {
                if let Err(e) = self.frame(conn, frame) {
                    self.send_to(conn, &e);
                }
            }
            Cmd::Leave { conn } => self.leave(conn),
        }
    }

    fn create(
        &mut self,
        host: Identity,
        movie_id: String,
        anyone_can_control: bool,
    ) -> Result<RoomRecord, ApiError> {
        if self.rooms.len() >= self.config.max_rooms {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_rooms",
                "the tracker hosts as many rooms as it can; try later",
            ));
        }
        let hosted = self
            .rooms
            .values()
            .filter(|r| r.rec.host == host.user_id)
            .count();
        if hosted >= self.config.max_rooms_per_user {
            return Err(ApiError::conflict(
                "too_many_rooms",
                format!(
                    "you already host {hosted} rooms (at most {})",
                    self.config.max_rooms_per_user
                ),
            ));
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let rec = RoomRecord {
            id: id.clone(),
            movie_id,
            host: host.user_id,
            host_name: host.name,
            anyone_can_control,
            created_at: crate::api::now_secs(),
            state: PlayState {
                playing: false,
                position: 0.0,
                at: server_now(),
                rate: 1.0,
            },
            seq: 1,
        };
        self.rooms.insert(id, Room::new(rec.clone()));
        Ok(rec)
    }

    fn members(&self, room: &Room) -> Vec<MemberView> {
        room.conns
            .iter()
            .filter_map(|c| self.conns.get(c))
            .map(|c| MemberView {
                user_id: c.who.user_id.clone(),
                name: c.who.name.clone(),
                host: c.who.user_id == room.rec.host,
                buffering: c.buffering,
            })
            .collect()
    }

    fn join(
        &mut self,
        id: String,
        who: Identity,
        out: mpsc::Sender<String>,
    ) -> Result<ConnId, ServerFrame> {
        let max = self.config.max_members;
        let room = self
            .rooms
            .get_mut(&id)
            .ok_or_else(|| err("no_such_room", "no such room"))?;
        if room.conns.len() >= max {
            return Err(err(
                "room_full",
                format!("the room has its {max} members already"),
            ));
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        room.conns.insert(conn);
        room.empty_since = None;
        let user_id = who.user_id.clone();
        self.conns.insert(
            conn,
            Conn {
                room: id.clone(),
                who,
                out,
                buffering: false,
                ignored_until: None,
                rtt_ms: 0.0,
                chat: VecDeque::new(),
            },
        );
        if let Some(room) = self.rooms.get(&id) {
            let welcome = ServerFrame::Welcome {
                you: user_id.clone(),
                room: Box::new(view(&room.rec, &self.web_url, self.members(room))),
                server_time: server_now(),
            };
            self.send_to(conn, &welcome);
        }
        self.presence(&id, "join", user_id);
        Ok(conn)
    }

    fn leave(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&c.room) {
            room.conns.remove(&conn);
            if room.conns.is_empty() {
                room.empty_since = Some(Instant::now());
            }
        }
        self.presence(&c.room, "leave", c.who.user_id);
        self.check_waiting(&c.room, "resume");
    }

    /// Sends one frame to one connection; a connection that cannot keep up is dropped.
    fn send_to(&mut self, conn: ConnId, frame: &ServerFrame) {
        let text = frame_text(frame);
        let full = match self.conns.get(&conn) {
            Some(c) => c.out.try_send(text).is_err(),
            None => false,
        };
        if full {
            tracing::info!(conn, "dropping a member that does not keep up");
            self.leave(conn);
        }
    }

    fn broadcast(&mut self, room: &str, frame: &ServerFrame) {
        let conns: Vec<ConnId> = match self.rooms.get(room) {
            Some(r) => r.conns.iter().copied().collect(),
            None => return,
        };
        for c in conns {
            self.send_to(c, frame);
        }
    }

    fn presence(&mut self, room: &str, event: &'static str, user_id: String) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = ServerFrame::Members {
            members: self.members(r),
            event,
            user_id,
        };
        self.broadcast(room, &frame);
    }

    /// Server time at which a command issued now takes effect.
    fn lead_until(&self, room: &str) -> f64 {
        let max_rtt = self
            .rooms
            .get(room)
            .map(|r| {
                r.conns
                    .iter()
                    .filter_map(|c| self.conns.get(c))
                    .map(|c| c.rtt_ms)
                    .fold(0.0, f64::max)
            })
            .unwrap_or(0.0);
        let lead = (2.0 * max_rtt)
            .max(self.config.min_lead_ms as f64)
            .min(self.config.max_lead_ms as f64);
        server_now() + lead
    }

    fn set_state(
        &mut self,
        room: &str,
        state: PlayState,
        by: Option<String>,
        reason: &'static str,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.rec.state = state;
        r.rec.seq += 1;
        let seq = r.rec.seq;
        self.dirty.insert(room.to_owned());
        self.broadcast(
            room,
            &ServerFrame::State {
                state,
                seq,
                by,
                reason,
            },
        );
    }

    /// Whether a member the room should wait for is buffering.
    fn someone_buffering(&self, room: &Room) -> bool {
        let now = Instant::now();
        room.conns
            .iter()
            .filter_map(|c| self.conns.get(c))
            .any(|c| c.buffering && c.ignored_until.is_none_or(|t| t <= now))
    }

    /// Pauses the room where it is (or at `position`) until every member is ready.
    fn start_waiting(&mut self, room: &str, position: Option<f64>, by: Option<String>) {
        let now = server_now();
        let deadline = Instant::now() + Duration::from_millis(self.config.ready_timeout_ms);
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let pos = position.unwrap_or_else(|| r.rec.state.position_at(now));
        r.waiting = Some(Waiting { deadline });
        let state = PlayState {
            playing: false,
            position: pos,
            at: now,
            rate: r.rec.state.rate,
        };
        self.set_state(room, state, by, "waiting");
    }

    /// Resumes a waiting room when nobody it waits for is buffering any more.
    fn check_waiting(&mut self, room: &str, reason: &'static str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        if r.waiting.is_none() || self.someone_buffering(r) {
            return;
        }
        self.resume(room, reason);
    }

    fn resume(&mut self, room: &str, reason: &'static str) {
        let at = self.lead_until(room);
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.waiting = None;
        let state = PlayState {
            playing: true,
            position: r.rec.state.position,
            at,
            rate: r.rec.state.rate,
        };
        self.set_state(room, state, None, reason);
    }

    fn frame(&mut self, conn: ConnId, frame: ClientFrame) -> Result<(), ServerFrame> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or_else(|| err("not_a_member", "join the room first"))?;
        let room_id = c.room.clone();
        let user = c.who.user_id.clone();
        let (host, anyone) = match self.rooms.get(&room_id) {
            Some(r) => (r.rec.host.clone(), r.rec.anyone_can_control),
            None => return Err(err("no_such_room", "the room is gone")),
        };
        let may_control = user == host || anyone;
        let denied = || {
            err(
                "not_allowed",
                "only the host controls playback in this room",
            )
        };
        match frame {
            ClientFrame::Auth { .. } => Err(err("already_authenticated", "already signed in")),
            ClientFrame::Ping { rtt, .. } => {
                if let Some(rtt) = rtt.filter(|r| r.is_finite() && *r >= 0.0) {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        // A smoothed estimate that follows increases quickly.
                        c.rtt_ms = if c.rtt_ms == 0.0 || rtt > c.rtt_ms {
                            rtt.min(10_000.0)
                        } else {
                            0.8 * c.rtt_ms + 0.2 * rtt
                        };
                    }
                }
                Ok(())
            }
            ClientFrame::Play { position } => {
                if !may_control {
                    return Err(denied());
                }
                let position = position.map(valid_position).transpose()?;
                let waiting_for_someone = self
                    .rooms
                    .get(&room_id)
                    .is_some_and(|r| self.someone_buffering(r));
                if waiting_for_someone {
                    self.start_waiting(&room_id, position, Some(user));
                    return Ok(());
                }
                let at = self.lead_until(&room_id);
                let Some(r) = self.rooms.get_mut(&room_id) else {
                    return Ok(());
                };
                r.waiting = None;
                let state = PlayState {
                    playing: true,
                    position: position.unwrap_or_else(|| r.rec.state.position_at(at)),
                    at,
                    rate: r.rec.state.rate,
                };
                self.set_state(&room_id, state, Some(user), "play");
                Ok(())
            }
            ClientFrame::Pause { position } => {
                if !may_control {
                    return Err(denied());
                }
                let position = position.map(valid_position).transpose()?;
                let at = self.lead_until(&room_id);
                let Some(r) = self.rooms.get_mut(&room_id) else {
                    return Ok(());
                };
                let was_waiting = r.waiting.take().is_some();
                let state = PlayState {
                    playing: false,
                    position: position.unwrap_or_else(|| r.rec.state.position_at(at)),
                    at: if was_waiting { server_now() } else { at },
                    rate: r.rec.state.rate,
                };
                self.set_state(&room_id, state, Some(user), "pause");
                Ok(())
            }
            ClientFrame::Seek { position } => {
                if !may_control {
                    return Err(denied());
                }
                let position = valid_position(position)?;
                let at = self.lead_until(&room_id);
                let Some(r) = self.rooms.get_mut(&room_id) else {
                    return Ok(());
                };
                let state = PlayState {
                    playing: r.rec.state.playing,
                    position,
                    at,
                    rate: r.rec.state.rate,
                };
                self.set_state(&room_id, state, Some(user), "seek");
                Ok(())
            }
            ClientFrame::Buffering => {
                let was = std::mem::replace(&mut c.buffering, true);
                let ignored = c.ignored_until.is_some_and(|t| t > Instant::now());
                if !was {
                    self.presence(&room_id, "buffering", user.clone());
                }
                let Some(r) = self.rooms.get(&room_id) else {
                    return Ok(());
                };
                let playing = r.rec.state.playing;
                if !ignored && playing && r.waiting.is_none() {
                    self.start_waiting(&room_id, None, Some(user));
                }
                Ok(())
            }
            ClientFrame::Ready => {
                let was = std::mem::replace(&mut c.buffering, false);
                c.ignored_until = None;
                if was {
                    self.presence(&room_id, "ready", user);
                }
                self.check_waiting(&room_id, "resume");
                Ok(())
            }
            ClientFrame::Chat { text } => {
                let text = text.trim().to_owned();
                if text.is_empty() || text.chars().count() > self.config.chat_max_chars {
                    return Err(err(
                        "bad_chat",
                        format!(
                            "chat messages have 1 to {} characters",
                            self.config.chat_max_chars
                        ),
                    ));
                }
                let now = Instant::now();
                let window = Duration::from_millis(self.config.chat_window_ms);
                while c
                    .chat
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > window)
                {
                    c.chat.pop_front();
                }
                if c.chat.len() >= self.config.chat_burst {
                    return Err(err("chat_rate_limited", "slow down: too many messages"));
                }
                c.chat.push_back(now);
                let name = c.who.name.clone();
                self.broadcast(
                    &room_id,
                    &ServerFrame::Chat {
                        user_id: user,
                        name,
                        text,
                        at: server_now(),
                    },
                );
                Ok(())
            }
            ClientFrame::Settings { anyone_can_control } => {
                if user != host {
                    return Err(err("not_allowed", "only the host changes settings"));
                }
                if let Some(r) = self.rooms.get_mut(&room_id) {
                    r.rec.anyone_can_control = anyone_can_control;
                    r.rec.seq += 1;
                }
                self.dirty.insert(room_id.clone());
                self.broadcast(&room_id, &ServerFrame::Settings { anyone_can_control });
                Ok(())
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        // Ready timeout: go on without whoever is still buffering.
        let expired: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.waiting.as_ref().is_some_and(|w| w.deadline <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let ignore_until = now + Duration::from_secs(30);
            if let Some(r) = self.rooms.get(&id) {
                let slow: Vec<ConnId> = r.conns.iter().copied().collect();
                for c in slow {
                    if let Some(c) = self.conns.get_mut(&c) {
                        if c.buffering {
                            c.ignored_until = Some(ignore_until);
                        }
                    }
                }
            }
            self.resume(&id, "ready_timeout");
        }
        // Idle rooms are deleted.
        let idle = Duration::from_secs(self.config.idle_timeout_secs);
        let gone: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.empty_since.is_some_and(|t| now.duration_since(t) >= idle))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.rooms.remove(&id);
            self.dirty.remove(&id);
            if self.persist.try_send(Persist::Delete(id.clone())).is_err() {
                tracing::warn!(room = %id, "cannot queue a room deletion");
            }
        }
        self.flush_dirty();
    }

    /// Queues the latest record of every changed room for the persister.
    fn flush_dirty(&mut self) {
        let ids: Vec<String> = self.dirty.iter().cloned().collect();
        for id in ids {
            let Some(r) = self.rooms.get(&id) else {
                self.dirty.remove(&id);
                continue;
            };
            match self.persist.try_send(Persist::Put(r.rec.clone())) {
                Ok(()) => {
                    self.dirty.remove(&id);
                }
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_follows_the_clock_only_while_playing() {
        let s = PlayState {
            playing: true,
            position: 10.0,
            at: 1000.0,
            rate: 1.0,
        };
        assert_eq!(s.position_at(500.0), 10.0);
        assert!((s.position_at(3000.0) - 12.0).abs() < 1e-9);
        let p = PlayState {
            playing: false,
            ..s
        };
        assert_eq!(p.position_at(9000.0), 10.0);
    }

    #[test]
    fn frames_are_typed() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"seek","position":3}"#).is_ok());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"seek"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nuke"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"chat","text":5}"#).is_err());
    }
}
