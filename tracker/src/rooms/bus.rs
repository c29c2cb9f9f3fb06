//! Rooms across tracker replicas (PostgreSQL engine only): a watch party whose members'
//! WebSockets land on different tracker processes.
//!
//! **One owner per room.** Each room is run by one replica's actor, exactly as on a single
//! tracker: the replica holding the room's PostgreSQL advisory lock
//! (`pg_try_advisory_lock(LOCK_CLASS, key(room))`, a session lock on this module's own
//! connection). Taking the lock is the claim; the lock dies with the session, so a replica
//! that is killed (or loses the database) gives its rooms up at once, with no lease to wait
//! out. The owner is found through `pg_locks` and the session's `application_name`
//! (`reelnet-rooms:<replica id>`); every replica connects as the same database user, so it
//! can read that name.
//!
//! **Members elsewhere.** A member whose WebSocket reaches another replica is *attached*:
//! that replica sends its join, frames and leave to the owner, and the owner sends the
//! member's outgoing frames back, all as `NOTIFY reelnet_rooms` messages addressed to one
//! replica ([`Envelope`]). The owner's actor sees an ordinary connection (its outgoing
//! channel is drained by a forwarder), so play/pause/seek scheduling, waiting for buffering
//! members, chat and stall limits are the same code as on one tracker. Clock pings are
//! answered by the replica the member is connected to (replicas' clocks must agree, as with
//! NTP); the RTT they report travels to the owner with the ping. A notification costs one
//! round trip through PostgreSQL each way: docs/benchmarks.md states the figure.
//!
//! **Faults.** The connected replica checks the owners of the rooms it attaches members
//! to every second; when an owner is gone (its lock is free, so this replica now holds it)
//! the attached members are disconnected and reconnect — now to a room this replica
//! adopts from the store with its last persisted state. When this module loses its own
//! connection, every lock it held is gone too: it drops its rooms from the actor (their
//! last state is persisted first) and its attached members, connects again, and members
//! reconnect as above. Nothing here writes room records: the owner's persister does.
//!
//! A room is not kept in every replica's actor: a replica adopts a room (reads its record)
//! when it takes the room's lock, and gives the lock back when its actor has deleted the
//! room as idle.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::actor::{Cmd, ConnId, Identity};
use super::wire::{frame_text, ClientFrame, ServerFrame};
use crate::store::{Store, StoreError};

/// The notification channel.
pub const CHANNEL: &str = "reelnet_rooms";
/// First key of the rooms' advisory locks: "reel" (the writers' and migrations' locks are
/// single 64-bit keys, a different key space).
pub const LOCK_CLASS: i32 = 0x7265_656c;
/// PostgreSQL refuses a notification payload of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;
/// How long a join waits for the owner's answer.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often owners of attached members are checked, and idle rooms' locks given back.
const SWEEP: Duration = Duration::from_secs(1);
/// Bound on one statement of this module.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The second key of a room's advisory lock. Two rooms may share one (then one replica
/// owns both); the owner adopts any room whose key it holds.
pub fn room_key(room: &str) -> i32 {
    let h = sha2::Sha256::digest(room.as_bytes());
    i32::from_be_bytes([h[0] & 0x7f, h[1], h[2], h[3]])
}

/// One message between replicas.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    to: String,
    from: String,
    #[serde(flatten)]
    msg: Msg,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Msg {
    /// A member connected elsewhere joins a room this replica owns.
    Join {
        room: String,
        c: u64,
        user_id: String,
        name: String,
    },
    /// The member's frame (JSON text, checked where it arrived).
    Frame {
        c: u64,
        text: String,
    },
    /// The member left.
    Leave {
        c: u64,
    },
    /// The owner's answer to `Join`.
    Joined {
        c: u64,
    },
    Refused {
        c: u64,
        text: String,
    },
    /// A frame for the member.
    Out {
        c: u64,
        text: String,
    },
    /// The owner dropped the member (slow, room deleted, owner shutting down).
    Drop {
        c: u64,
    },
}

/// Where a member's WebSocket is joined.
pub enum Joined {
    /// To this replica's actor.
    Local(ConnId),
    /// To another replica's room, through the bus (`c` names it here).
    Remote(u64),
}

enum BusCmd {
    Join {
        room: String,
        who: Identity,
        out: mpsc::Sender<String>,
        reply: oneshot::Sender<Result<Joined, ServerFrame>>,
    },
    /// Takes the lock of a room just created here.
    Claim {
        room: String,
    },
    Send {
        c: u64,
        text: String,
    },
    Detach {
        c: u64,
    },
}

/// The handle the rooms and their sockets use.
#[derive(Clone)]
pub struct Bus {
    tx: mpsc::Sender<BusCmd>,
}

fn unavailable() -> ServerFrame {
    ServerFrame::Error {
        code: "rooms_unavailable",
        message: "watch parties are reconnecting to the database; try again in a moment".to_owned(),
    }
}

impl Bus {
    /// Joins a member to `room` wherever it is run; `out` receives the member's frames.
    pub async fn join(
        &self,
        room: String,
        who: Identity,
        out: mpsc::Sender<String>,
    ) -> Result<Joined, ServerFrame> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(BusCmd::Join {
                room,
                who,
                out,
                reply,
            })
            .await
            .map_err(|_| unavailable())?;
        match tokio::time::timeout(JOIN_TIMEOUT + QUERY_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            _ => Err(unavailable()),
        }
    }

    /// Claims a room just created by this replica.
    pub async fn claim(&self, room: String) {
        let _ = self.tx.send(BusCmd::Claim { room }).await;
    }

    /// Sends an attached member's frame to the owner.
    pub async fn send(&self, c: u64, text: String) -> bool {
        self.tx.send(BusCmd::Send { c, text }).await.is_ok()
    }

    /// An attached member left.
    pub async fn detach(&self, c: u64) {
        let _ = self.tx.send(BusCmd::Detach { c }).await;
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct BusOptions {
    pub config: tokio_postgres::Config,
    pub connector: crate::store::kv::postgres::Connector,
    pub hosts: String,
}

struct Attached {
    room: String,
    owner: String,
    out: mpsc::Sender<String>,
}

struct Pending {
    attached: Attached,
    reply: oneshot::Sender<Result<Joined, ServerFrame>>,
    until: tokio::time::Instant,
}

/// The bus task's state: the owner of everything above.
struct BusTask {
    me: String,
    opts: BusOptions,
    actor: mpsc::Sender<Cmd>,
    store: Store,
    /// Lock keys this replica holds (the rooms it owns).
    owned: BTreeSet<i32>,
    /// Members of rooms owned here that are connected elsewhere: (replica, c) → conn.
    remote: HashMap<(String, u64), ConnId>,
    forwarders: JoinSet<()>,
    /// Members connected here, attached to rooms owned elsewhere.
    attached: HashMap<u64, Attached>,
    pending: HashMap<u64, Pending>,
    next_c: u64,
}

struct Conn {
    client: Arc<Client>,
    notes: mpsc::Receiver<String>,
    publish: mpsc::Sender<String>,
    publisher: tokio::task::JoinHandle<()>,
}

impl Bus {
    /// Starts the bus; run the returned future as a task (it stops on `cancel`).
    pub(super) fn start(
        opts: BusOptions,
        actor: mpsc::Sender<Cmd>,
        store: Store,
        cancel: CancellationToken,
    ) -> (
        Self,
        impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(1024);
        let task = BusTask {
            me: hex::encode(rand::random::<[u8; 8]>()),
            opts,
            actor,
            store,
            owned: BTreeSet::new(),
            remote: HashMap::new(),
            forwarders: JoinSet::new(),
            attached: HashMap::new(),
            pending: HashMap::new(),
            next_c: 1,
        };
        (Self { tx }, task.run(rx, cancel))
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

impl BusTask {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<BusCmd>,
        cancel: CancellationToken,
    ) -> Result<(), StoreError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let conn = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                c = self.connect() => c,
            };
            let mut conn = match conn {
                Ok(c) => {
                    backoff = Duration::from_millis(200);
                    tracing::info!(replica = %self.me, "rooms bus connected");
                    c
                }
                Err(err) => {
                    tracing::warn!(%err, hosts = %self.opts.hosts, "rooms bus cannot connect; retrying");
                    // Joins meanwhile are refused (the client retries).
                    let until = tokio::time::sleep(backoff);
                    tokio::pin!(until);
                    loop {
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = &mut until => break,
                            cmd = rx.recv() => match cmd {
                                Some(BusCmd::Join { reply, .. }) => { let _ = reply.send(Err(unavailable())); }
                                Some(_) => {}
                                None => return Ok(()),
                            },
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let lost = self.serve(&mut conn, &mut rx, &cancel).await;
            conn.publisher.abort();
            if !lost {
                return Ok(());
            }
            tracing::warn!("rooms bus lost its database connection: its rooms are given up");
            self.reset().await;
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let mut cfg = self.opts.config.clone();
        cfg.application_name(format!("reelnet-rooms:{}", self.me));
        let (ntx, notes) = mpsc::channel(4096);
        let client = self
            .opts
            .connector
            .connect(&cfg, Some(ntx))
            .await
            .map_err(|e| e.to_string())?;
        let client = Arc::new(client);
        timed(client.batch_execute(&format!("LISTEN {CHANNEL}"))).await?;
        let (publish, mut prx) = mpsc::channel::<String>(4096);
        let pclient = client.clone();
        // Prepared once: each message is then one round trip.
        let notify = timed(client.prepare("SELECT pg_notify($1, $2)")).await?;
        let publisher = tokio::spawn(async move {
            // One at a time, in order: a member's frames reach the owner in the order sent.
            while let Some(payload) = prx.recv().await {
                if let Err(err) = timed(pclient.execute(&notify, &[&CHANNEL, &payload])).await {
                    tracing::warn!(%err, "rooms bus cannot publish");
                }
            }
        });
        Ok(Conn {
            client,
            notes,
            publish,
            publisher,
        })
    }

    /// Serves until cancelled (false) or the connection is lost (true).
    async fn serve(
        &mut self,
        conn: &mut Conn,
        rx: &mut mpsc::Receiver<BusCmd>,
        cancel: &CancellationToken,
    ) -> bool {
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The owner forwards its members' frames through this channel.
        let (fwd_tx, mut fwd_rx) = mpsc::channel::<Envelope>(4096);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.leave_all(conn).await;
                    return false;
                }
                note = conn.notes.recv() => match note {
                    Some(payload) => self.on_note(conn, &fwd_tx, &payload).await,
                    None => return true,
                },
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        if let Err(err) = self.on_cmd(conn, cmd).await {
                            tracing::warn!(%err, "rooms bus query failed");
                            return true;
                        }
                    }
                    None => return false,
                },
                Some(env) = fwd_rx.recv() => self.publish(conn, env).await,
                Some(_) = self.forwarders.join_next(), if !self.forwarders.is_empty() => {}
                _ = sweep.tick() => {
                    if let Err(err) = self.sweep(conn).await {
                        tracing::warn!(%err, "rooms bus query failed");
                        return true;
                    }
                }
            }
        }
    }

    async fn publish(&self, conn: &Conn, env: Envelope) {
        let payload = match serde_json::to_string(&env) {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(%err, "rooms bus cannot encode a message");
                return;
            }
        };
        if payload.len() > MAX_PAYLOAD {
            tracing::warn!(
                bytes = payload.len(),
                "rooms bus message too large; dropped"
            );
            return;
        }
        if conn.publish.send(payload).await.is_err() {
            tracing::warn!("rooms bus publisher stopped");
        }
    }

    fn envelope(&self, to: &str, msg: Msg) -> Envelope {
        Envelope {
            to: to.to_owned(),
            from: self.me.clone(),
            msg,
        }
    }

    /// Takes `key`'s lock; true when this replica holds it (now or already).
    async fn try_lock(&mut self, conn: &Conn, key: i32) -> Result<bool, String> {
        if self.owned.contains(&key) {
            return Ok(true);
        }
        let row = timed(
            conn.client
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_CLASS, &key]),
        )
        .await?;
        let got: bool = row.try_get(0).map_err(|e| e.to_string())?;
        if got {
            self.owned.insert(key);
        }
        Ok(got)
    }

    /// The replica holding `key`'s lock, if any.
    async fn owner_of(&self, conn: &Conn, key: i32) -> Result<Option<String>, String> {
        let rows = timed(conn.client.query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
             AND l.classid::bigint = $1 AND l.objid::bigint = $2",
            &[&i64::from(LOCK_CLASS), &i64::from(key)],
        ))
        .await?;
        Ok(rows.first().and_then(|r| {
            r.try_get::<_, String>(0)
                .ok()
                .and_then(|n| n.strip_prefix("reelnet-rooms:").map(str::to_owned))
        }))
    }

    /// Makes sure this replica's actor runs `room` (its lock held): false when there is
    /// no such room.
    async fn adopt(&self, room: &str) -> bool {
        let rec = match self.store.room(room) {
            Ok(Some(rec)) => rec,
            Ok(None) => return false,
            Err(err) => {
                tracing::warn!(%err, room, "cannot read a room to adopt");
                return false;
            }
        };
        let (reply, rx) = oneshot::channel();
        if self.actor.send(Cmd::Adopt { rec, reply }).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    async fn join_local(
        &self,
        room: String,
        who: Identity,
        out: mpsc::Sender<String>,
    ) -> Result<ConnId, ServerFrame> {
        let (reply, rx) = oneshot::channel();
        self.actor
            .send(Cmd::Join {
                id: room,
                who,
                out,
                reply,
            })
            .await
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    async fn on_cmd(&mut self, conn: &Conn, cmd: BusCmd) -> Result<(), String> {
        match cmd {
            BusCmd::Join {
                room,
                who,
                out,
                reply,
            } => {
                let key = room_key(&room);
                for _ in 0..3 {
                    if self.try_lock(conn, key).await? {
                        if !self.adopt(&room).await {
                            let _ = reply.send(Err(ServerFrame::Error {
                                code: "no_such_room",
                                message: "no such room".to_owned(),
                            }));
                            return Ok(());
                        }
                        let r = self.join_local(room, who, out).await.map(Joined::Local);
                        let _ = reply.send(r);
                        return Ok(());
                    }
                    if let Some(owner) = self.owner_of(conn, key).await? {
                        let c = self.next_c;
                        self.next_c += 1;
                        let env = self.envelope(
                            &owner,
                            Msg::Join {
                                room: room.clone(),
                                c,
                                user_id: who.user_id.clone(),
                                name: who.name.clone(),
                            },
                        );
                        self.pending.insert(
                            c,
                            Pending {
                                attached: Attached { room, owner, out },
                                reply,
                                until: tokio::time::Instant::now() + JOIN_TIMEOUT,
                            },
                        );
                        self.publish(conn, env).await;
                        return Ok(());
                    }
                    // The owner let go between the two queries: try again.
                }
                let _ = reply.send(Err(unavailable()));
                Ok(())
            }
            BusCmd::Claim { room } => {
                if !self.try_lock(conn, room_key(&room)).await? {
                    tracing::warn!(
                        room,
                        "a room created here is owned by another replica (key collision)"
                    );
                }
                Ok(())
            }
            BusCmd::Send { c, text } => {
                if let Some(a) = self.attached.get(&c) {
                    let env = self.envelope(&a.owner, Msg::Frame { c, text });
                    self.publish(conn, env).await;
                }
                Ok(())
            }
            BusCmd::Detach { c } => {
                self.pending.remove(&c);
                if let Some(a) = self.attached.remove(&c) {
                    let env = self.envelope(&a.owner, Msg::Leave { c });
                    self.publish(conn, env).await;
                }
                Ok(())
            }
        }
    }

    async fn on_note(&mut self, conn: &Conn, fwd: &mpsc::Sender<Envelope>, payload: &str) {
        let env = match serde_json::from_str::<Envelope>(payload) {
            Ok(e) if e.to == self.me => e,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(%err, "rooms bus: unreadable message ignored");
                return;
            }
        };
        let from = env.from;
        match env.msg {
            // As the owner.
            Msg::Join {
                room,
                c,
                user_id,
                name,
            } => {
                let key = room_key(&room);
                let answer = if !self.owned.contains(&key) {
                    // Not ours (any more): the member's replica looks again.
                    Err(frame_text(&unavailable()))
                } else if !self.adopt(&room).await {
                    Err(frame_text(&ServerFrame::Error {
                        code: "no_such_room",
                        message: "no such room".to_owned(),
                    }))
                } else {
                    let (out, mut orx) = mpsc::channel::<String>(256);
                    let who = Identity { user_id, name };
                    match self.join_local(room, who, out).await {
                        Ok(conn_id) => {
                            self.remote.insert((from.clone(), c), conn_id);
                            let (fwd, me, to) = (fwd.clone(), self.me.clone(), from.clone());
                            self.forwarders.spawn(async move {
                                while let Some(text) = orx.recv().await {
                                    let env = Envelope {
                                        to: to.clone(),
                                        from: me.clone(),
                                        msg: Msg::Out { c, text },
                                    };
                                    if fwd.send(env).await.is_err() {
                                        return;
                                    }
                                }
                                // The actor dropped the member.
                                let _ = fwd
                                    .send(Envelope {
                                        to,
                                        from: me,
                                        msg: Msg::Drop { c },
                                    })
                                    .await;
                            });
                            Ok(())
                        }
                        Err(frame) => Err(frame_text(&frame)),
                    }
                };
                let msg = match answer {
                    Ok(()) => Msg::Joined { c },
                    Err(text) => Msg::Refused { c, text },
                };
                let env = self.envelope(&from, msg);
                self.publish(conn, env).await;
            }
            Msg::Frame { c, text } => {
                let Some(&conn_id) = self.remote.get(&(from, c)) else {
                    return;
                };
                if let Ok(frame) = serde_json::from_str::<ClientFrame>(&text) {
                    let _ = self
                        .actor
                        .send(Cmd::Frame {
                            conn: conn_id,
                            frame,
                        })
                        .await;
                }
            }
            Msg::Leave { c } => {
                if let Some(conn_id) = self.remote.remove(&(from, c)) {
                    let _ = self.actor.send(Cmd::Leave { conn: conn_id }).await;
                }
            }
            // As the member's replica.
            Msg::Joined { c } => {
                if let Some(p) = self.pending.remove(&c) {
                    if p.reply.send(Ok(Joined::Remote(c))).is_ok() {
                        self.attached.insert(c, p.attached);
                    } else {
                        // The socket gave up waiting.
                        let env = self.envelope(&from, Msg::Leave { c });
                        self.publish(conn, env).await;
                    }
                }
            }
            Msg::Refused { c, text } => {
                if let Some(p) = self.pending.remove(&c) {
                    let frame = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| {
                            Some(ServerFrame::Error {
                                code: match v.get("code")?.as_str()? {
                                    "room_full" => "room_full",
                                    "no_such_room" => "no_such_room",
                                    _ => "rooms_unavailable",
                                },
                                message: v.get("message")?.as_str()?.to_owned(),
                            })
                        })
                        .unwrap_or_else(unavailable);
                    let _ = p.reply.send(Err(frame));
                }
            }
            Msg::Out { c, text } => {
                let full = match self.attached.get(&c) {
                    Some(a) => a.out.try_send(text).is_err(),
                    None => false,
                };
                if full {
                    tracing::info!(c, "dropping an attached member that does not keep up");
                    if let Some(a) = self.attached.remove(&c) {
                        let env = self.envelope(&a.owner, Msg::Leave { c });
                        self.publish(conn, env).await;
                    }
                }
            }
            Msg::Drop { c } => {
                // Closes the member's socket; the owner forgets the member on our answer.
                if self.attached.remove(&c).is_some() {
                    let env = self.envelope(&from, Msg::Leave { c });
                    self.publish(conn, env).await;
                }
            }
        }
    }

    /// Every second: joins the owner did not answer fail; attached members of a room whose
    /// owner is gone are disconnected (they reconnect here, to the adopted room); locks of
    /// rooms the actor deleted are given back.
    async fn sweep(&mut self, conn: &Conn) -> Result<(), String> {
        let now = tokio::time::Instant::now();
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.until <= now)
            .map(|(c, _)| *c)
            .collect();
        for c in late {
            if let Some(p) = self.pending.remove(&c) {
                let _ = p.reply.send(Err(unavailable()));
            }
        }
        let rooms: BTreeSet<String> = self.attached.values().map(|a| a.room.clone()).collect();
        for room in rooms {
            let key = room_key(&room);
            if self.try_lock(conn, key).await? {
                tracing::info!(
                    room,
                    "the owner of a room is gone: its members here reconnect to this replica"
                );
                self.attached.retain(|_, a| room_key(&a.room) != key);
            }
        }
        if !self.remote.is_empty() {
            // Members relayed by a replica that is gone (killed, or cut from the database)
            // leave: the room must not wait for them or list them.
            let rows = timed(conn.client.query(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'reelnet-rooms:%'",
                &[],
            ))
            .await?;
            let live: BTreeSet<String> = rows
                .iter()
                .filter_map(|r| r.try_get::<_, String>(0).ok())
                .filter_map(|n| n.strip_prefix("reelnet-rooms:").map(str::to_owned))
                .collect();
            let gone: Vec<(String, u64)> = self
                .remote
                .keys()
                .filter(|(from, _)| !live.contains(from))
                .cloned()
                .collect();
            for key in gone {
                if let Some(conn_id) = self.remote.remove(&key) {
                    tracing::info!(replica = %key.0, "a replica relaying a member is gone: the member leaves");
                    let _ = self.actor.send(Cmd::Leave { conn: conn_id }).await;
                }
            }
        }
        if !self.owned.is_empty() {
            let (reply, rx) = oneshot::channel();
            if self.actor.send(Cmd::Ids { reply }).await.is_ok() {
                if let Ok(ids) = rx.await {
                    let live: BTreeSet<i32> = ids.iter().map(|r| room_key(r)).collect();
                    let idle: Vec<i32> = self.owned.difference(&live).copied().collect();
                    for key in idle {
                        timed(
                            conn.client.query_one(
                                "SELECT pg_advisory_unlock($1, $2)",
                                &[&LOCK_CLASS, &key],
                            ),
                        )
                        .await?;
                        self.owned.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    /// On shutdown: members attached elsewhere leave their rooms.
    async fn leave_all(&mut self, conn: &Conn) {
        let left: Vec<(u64, String)> = self.attached.drain().map(|(c, a)| (c, a.owner)).collect();
        for (c, owner) in left {
            let env = self.envelope(&owner, Msg::Leave { c });
            self.publish(conn, env).await;
        }
    }

    /// The connection (and so every lock) is gone: give up the rooms run here and the
    /// members attached elsewhere; they reconnect.
    async fn reset(&mut self) {
        self.attached.clear();
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(unavailable()));
        }
        self.remote.clear();
        self.forwarders.abort_all();
        self.owned.clear();
        let _ = self.actor.send(Cmd::ForgetAll).await;
    }
}
