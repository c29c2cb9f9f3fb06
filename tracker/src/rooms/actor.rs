//! The rooms actor: the one owner of every room's state (record, members, who is
//! buffering, the wait for buffering members, chat and stall limits). It answers [`Cmd`]s
//! from the handle and the connection tasks, schedules play/pause/seek ahead by the
//! members' RTT, ticks to end waits and delete idle rooms, and hands changes to the
//! persister.
//!
//! Stalls are limited per member: a user may start buffering (and so pause the room for
//! up to the ready timeout) `stall_burst` times per `stall_window_ms` in one room, counted
//! per user so reconnecting does not reset it. Further `buffering` frames in the window are
//! dropped: the room keeps playing and does not wait for that member, who is told once
//! (`stall_rate_limited`) and catches up by itself. `ready` is never limited: it only ever
//! lets a room go on.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use warp::http::StatusCode;

use super::persist::Persist;
use super::wire::{frame_text, server_now, view, ClientFrame, MemberView, RoomView, ServerFrame};
use crate::config::RoomsConfig;
use crate::error::ApiError;
use crate::store::{PlayState, RoomRecord, StoreError};

pub(super) type ConnId = u64;

/// Who a connection belongs to.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
}

pub(super) enum Cmd {
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
    /// Runs `rec` here unless it already is (its lock was just taken: [`super::bus`]).
    Adopt {
        rec: RoomRecord,
        reply: oneshot::Sender<bool>,
    },
    /// The ids of the rooms run here.
    Ids {
        reply: oneshot::Sender<Vec<String>>,
    },
    /// Gives up every room (the bus lost their locks): their last states are queued for
    /// the persister and their members disconnected, to reconnect wherever the rooms go.
    ForgetAll,
}

pub(super) struct Conn {
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

/// One user's recent stalls in one room (a sliding window).
#[derive(Debug, Default)]
pub(super) struct Stalls {
    /// When the stalls in the window began, oldest first (at most the burst).
    times: VecDeque<Instant>,
    /// Whether the member was told about the limit since their last allowed stall.
    told: bool,
}

/// What a stall (a member starting to buffer) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stall {
    /// Within the budget: counted; the room may wait for the member.
    Allowed,
    /// Over the budget, first time in this window: drop it and tell the member.
    LimitedTell,
    /// Over the budget again: drop it silently.
    Limited,
}

impl Stalls {
    /// Counts a stall at `now` when fewer than `burst` began within `window` before it.
    pub(super) fn try_stall(&mut self, now: Instant, burst: usize, window: Duration) -> Stall {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.times.pop_front();
        }
        if self.times.len() < burst {
            self.times.push_back(now);
            self.told = false;
            return Stall::Allowed;
        }
        if std::mem::replace(&mut self.told, true) {
            Stall::Limited
        } else {
            Stall::LimitedTell
        }
    }

    /// Whether no stall within `window` before `now` is remembered (the entry can go).
    fn idle(&self, now: Instant, window: Duration) -> bool {
        self.times
            .back()
            .is_none_or(|t| now.saturating_duration_since(*t) >= window)
    }
}

pub(super) struct Room {
    rec: RoomRecord,
    conns: BTreeSet<ConnId>,
    waiting: Option<Waiting>,
    empty_since: Option<Instant>,
    /// Recent stalls by user id.
    stalls: HashMap<String, Stalls>,
}

impl Room {
    pub(super) fn new(rec: RoomRecord) -> Self {
        Self {
            rec,
            conns: BTreeSet::new(),
            waiting: None,
            empty_since: Some(Instant::now()),
            stalls: HashMap::new(),
        }
    }
}

pub(super) struct Actor {
    pub(super) config: RoomsConfig,
    pub(super) web_url: String,
    pub(super) rooms: BTreeMap<String, Room>,
    pub(super) conns: HashMap<ConnId, Conn>,
    pub(super) next_conn: ConnId,
    pub(super) dirty: BTreeSet<String>,
    pub(super) persist: mpsc::Sender<Persist>,
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
    pub(super) async fn run(
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
            Cmd::Adopt { rec, reply } => {
                self.rooms
                    .entry(rec.id.clone())
                    .or_insert_with(|| Room::new(rec));
                let _ = reply.send(true);
            }
            Cmd::Ids { reply } => {
                let _ = reply.send(self.rooms.keys().cloned().collect());
            }
            Cmd::ForgetAll => {
                self.flush_dirty();
                self.rooms.clear();
                self.conns.clear();
            }
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
            created_at: crate::clock::now_secs(),
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
                if !c.buffering {
                    // A readiness change that can pause the room: within the budget only.
                    let now = Instant::now();
                    let burst = self.config.stall_burst;
                    let window = Duration::from_millis(self.config.stall_window_ms);
                    let Some(r) = self.rooms.get_mut(&room_id) else {
                        return Ok(());
                    };
                    if r.stalls.len() > 2 * self.config.max_members {
                        r.stalls.retain(|_, s| !s.idle(now, window));
                    }
                    match r
                        .stalls
                        .entry(user.clone())
                        .or_default()
                        .try_stall(now, burst, window)
                    {
                        Stall::Allowed => {}
                        Stall::LimitedTell => {
                            tracing::info!(room = %room_id, user = %user, "stall limit: the room no longer waits for this member");
                            return Err(err(
                                "stall_rate_limited",
                                format!(
                                    "you have buffered {burst} times in {window:?}: the room goes on without waiting for you, and your player catches up by itself"
                                ),
                            ));
                        }
                        Stall::Limited => return Ok(()),
                    }
                }
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Ok(());
                };
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
    fn stalls_are_limited_per_sliding_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let window = ms(1000);
        let mut s = Stalls::default();
        assert_eq!(s.try_stall(t0, 2, window), Stall::Allowed);
        assert_eq!(s.try_stall(t0 + ms(100), 2, window), Stall::Allowed);
        // Over the budget: told once, then silent.
        assert_eq!(s.try_stall(t0 + ms(200), 2, window), Stall::LimitedTell);
        assert_eq!(s.try_stall(t0 + ms(300), 2, window), Stall::Limited);
        assert_eq!(s.try_stall(t0 + ms(999), 2, window), Stall::Limited);
        assert!(!s.idle(t0 + ms(999), window));
        // The first stall leaves the window: one more is allowed (refused ones never
        // counted), and a later refusal is told again.
        assert_eq!(s.try_stall(t0 + ms(1000), 2, window), Stall::Allowed);
        assert_eq!(s.try_stall(t0 + ms(1050), 2, window), Stall::LimitedTell);
        assert_eq!(s.try_stall(t0 + ms(1100), 2, window), Stall::Allowed);
        assert_eq!(s.times.len(), 2);
        assert!(s.idle(t0 + ms(2100), window));
        assert_eq!(s.try_stall(t0 + ms(5000), 2, window), Stall::Allowed);
        assert_eq!(s.times.len(), 1);
    }
}
