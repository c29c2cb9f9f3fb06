//! What rooms look like on the wire: the JSON views the HTTP routes answer, and the typed
//! WebSocket frames in both directions (tagged by `type`, unknown fields refused).

use serde::{Deserialize, Serialize};

use crate::store::{PlayState, RoomRecord};

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

pub(super) fn frame_text(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| "{\"type\":\"error\"}".to_owned())
}

/// Server time, unix ms with sub-millisecond precision.
pub fn server_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// A stored room and its connected members as the API shows them.
pub(super) fn view(rec: &RoomRecord, web_url: &str, members: Vec<MemberView>) -> RoomView {
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
