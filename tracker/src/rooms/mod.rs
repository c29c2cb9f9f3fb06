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
//!
//! On PostgreSQL several tracker replicas share the rooms ([`bus`]): each room is run by
//! the replica holding its advisory lock, and members connected to another replica are
//! relayed to it through `NOTIFY`. A replica adopts a room from the store when it takes
//! the lock, so stored rooms are not all restored at start there. Limits counted here
//! (`max_rooms`, `max_rooms_per_user`) count the rooms one replica runs.
//!
//! Files: this one holds the handle ([`Rooms`]: start, create, get); `wire` the JSON views
//! and WebSocket frames; `socket` one member's WebSocket task; `actor` the owner of all
//! room state; `persist` the task that writes room records through the store; `bus` rooms
//! across replicas. The
//! `[rooms]` settings are [`crate::config::RoomsConfig`].

mod actor;
pub mod bus;
mod persist;
mod socket;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use reelnet_proto::{Claims, MovieId, Tier};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use crate::config::RoomsConfig;
pub use crate::store::{PlayState, RoomRecord};
pub use wire::{server_now, ClientFrame, CreateRoom, MemberView, RoomView, ServerFrame};

use crate::api::Api;
use crate::error::ApiError;
use crate::store::{Store, StoreError};
pub use actor::Identity;
use actor::{Actor, Cmd, Room};
use persist::persister;
use wire::view;

/// The handle to the rooms actor.
#[derive(Clone)]
pub struct Rooms {
    tx: mpsc::Sender<Cmd>,
    store: Store,
    config: RoomsConfig,
    web_url: String,
    /// Rooms across tracker replicas (PostgreSQL engine): `None` on one sled tracker.
    bus: Option<bus::Bus>,
}

/// The futures [`Rooms::start`] returns, each to be run as a task.
pub struct RoomTasks<A, P, B> {
    pub actor: A,
    pub persister: P,
    /// Only with a bus.
    pub bus: Option<B>,
}

impl Rooms {
    /// Starts the actor (and its persister, and with `bus` the rooms bus); they stop on
    /// `cancel`. Run the returned futures as tasks. Without a bus (one tracker) every
    /// stored room is restored here; with one, a room is adopted by the replica that takes
    /// its lock ([`bus`]).
    #[allow(clippy::type_complexity)]
    pub fn start(
        config: RoomsConfig,
        web_url: String,
        store: Store,
        bus: Option<bus::BusOptions>,
        cancel: CancellationToken,
    ) -> (
        Self,
        RoomTasks<
            impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
            impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
            impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
        >,
    ) {
        let (tx, rx) = mpsc::channel(1024);
        let (ptx, prx) = mpsc::channel(256);
        let mut rooms = BTreeMap::new();
        let restore = if bus.is_some() {
            Vec::new()
        } else {
            store.rooms()
        };
        for rec in restore {
            match rec {
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
        let (bus, bus_task) = match bus {
            Some(opts) => {
                let (b, t) = bus::Bus::start(opts, tx.clone(), store.clone(), cancel.clone());
                (Some(b), Some(t))
            }
            None => (None, None),
        };
        let handle = Self {
            tx,
            store: store.clone(),
            config,
            web_url,
            bus,
        };
        (
            handle,
            RoomTasks {
                actor: actor.run(rx, cancel.clone()),
                persister: persister(store, prx, cancel),
                bus: bus_task,
            },
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
        self.store.put_room_if_newer(rec.clone()).await?;
        if let Some(bus) = &self.bus {
            bus.claim(rec.id.clone()).await;
        }
        Ok(view(&rec, &self.web_url, Vec::new()))
    }

    /// `GET /api/v1/rooms/{id}`.
    pub async fn get(&self, id: &str) -> Result<RoomView, ApiError> {
        let key = id.to_owned();
        if let Some(v) = self.ask(|reply| Cmd::Get { id: key, reply }).await? {
            return Ok(v);
        }
        // Run by another replica (or by nobody right now): the stored record, without the
        // members, who are known where the room runs.
        match self.store.room(id)? {
            Some(rec) => Ok(view(&rec, &self.web_url, Vec::new())),
            None => Err(ApiError::not_found("no such room")),
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
