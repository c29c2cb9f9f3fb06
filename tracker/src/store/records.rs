//! The records the tracker stores, and the typed keys they live under.

use std::fmt;

use reelnet_proto::{Role, Tier};
use serde::{Deserialize, Serialize};

/// A user's id: 16 random bytes, shown as 32 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserId(pub [u8; 16]);

impl UserId {
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Parses the hex form.
    pub fn parse(s: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// `self ++ suffix`, the key of a per-user record.
    pub fn key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(16 + suffix.len());
        k.extend_from_slice(&self.0);
        k.extend_from_slice(suffix);
        k
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub email_verified: bool,
    pub tier: Tier,
    /// When a premium tier ends (unix seconds); `None` for no end.
    pub tier_until: Option<u64>,
    pub role: Role,
    pub created_at: u64,
}

/// What an emailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    Verify,
    PasswordReset,
    /// A single-use link that makes the account registered with it the first admin
    /// (`reelnet-tracker admin bootstrap`); its `user` is unused (all zero).
    Bootstrap,
}

/// A single-use token sent by email, stored by its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailToken {
    pub user: UserId,
    pub kind: TokenKind,
    pub expires_at: u64,
    pub used: bool,
}

/// A refresh token, stored by its hash. Each use rotates it; a second use of a used token
/// means it leaked, and revokes its whole family (unless it comes within the grace of its
/// rotation: two tabs refreshing at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    pub user: UserId,
    pub family: [u8; 16],
    pub expires_at: u64,
    pub used: bool,
    /// When it was rotated (unix seconds); for a token not used yet, when it was issued
    /// (rotation refuses an unused token issued more than the grace before its family's
    /// last rotation: a branch forked within the grace). `None` in records written before
    /// version 2 (and in unused ones written before the fork check: not checked).
    pub used_at: Option<u64>,
}

/// The record version of [`RefreshToken`] and [`Family`] since sign-in through the tracker.
pub const SESSION_RECORD_VERSION: u8 = 2;

/// [`RefreshToken`] as written before version 2.
#[derive(Debug, Clone, Deserialize)]
pub struct RefreshTokenV1 {
    pub user: UserId,
    pub family: [u8; 16],
    pub expires_at: u64,
    pub used: bool,
}

impl From<RefreshTokenV1> for RefreshToken {
    fn from(v: RefreshTokenV1) -> Self {
        Self {
            user: v.user,
            family: v.family,
            expires_at: v.expires_at,
            used: v.used,
            used_at: None,
        }
    }
}

/// The chain of refresh tokens that started with one sign-in: a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Family {
    pub user: UserId,
    pub revoked: bool,
    pub created_at: u64,
    /// Who holds it: `node:<id>` (a node's gateway, code flow), `script` (JSON login) or
    /// `device:<name>` (device grant).
    pub client: String,
    /// The `aud` of its access tokens (the network or `reelnet-node:<id>`).
    pub aud: String,
    /// The scopes of its access tokens (space-separated).
    pub scope: Option<String>,
    /// When it was last refreshed.
    pub last_used_at: Option<u64>,
}

impl Family {
    /// The node whose client this is (`node:<id>`), if any.
    pub fn client_node(&self) -> Option<&str> {
        self.client.strip_prefix("node:")
    }
}

/// [`Family`] as written before version 2 (JSON logins only).
#[derive(Debug, Clone, Deserialize)]
pub struct FamilyV1 {
    pub user: UserId,
    pub revoked: bool,
    pub created_at: u64,
}

impl From<FamilyV1> for Family {
    fn from(v: FamilyV1) -> Self {
        Self {
            user: v.user,
            revoked: v.revoked,
            created_at: v.created_at,
            client: "script".to_owned(),
            aud: reelnet_proto::claims::ACCESS_TOKEN_AUDIENCE.to_owned(),
            // Older sessions may have started on a node's page: no scope.
            scope: None,
            last_used_at: None,
        }
    }
}

/// A user's consent to a client (node), stored under user id ++ node id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub granted_at: u64,
}

/// A movie on a user's watch-later list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchEntry {
    pub added_at_ms: u64,
    /// Insertion order, for entries added within the same millisecond.
    pub seq: u64,
}

/// Where a user is in a movie.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub position_s: f64,
    pub duration_s: f64,
    /// The writer's timestamp (ms); a write older than the stored one is ignored.
    pub updated_at_ms: u64,
    /// Store-wide write order, breaking ties between writes of the same millisecond.
    pub seq: u64,
}

/// Whether subtitles are shown when a movie starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubtitleMode {
    /// No subtitles.
    #[default]
    Off,
    /// Subtitles in `subtitle_language` (or the default track).
    On,
    /// Only a forced track (signs, foreign dialogue) in the audio's language.
    ForcedOnly,
}

/// How large captions are drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubtitleSize {
    S,
    #[default]
    M,
    L,
    Xl,
}

/// A user's playback preferences, applied by the player when a movie starts. Also the
/// JSON of `GET/PUT me/preferences` (fields missing from a PUT take their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Preferences {
    /// BCP 47 tag of the preferred audio language; `None`: the movie's default track.
    pub audio_language: Option<String>,
    /// BCP 47 tag of the preferred subtitle language.
    pub subtitle_language: Option<String>,
    pub subtitles: SubtitleMode,
    pub subtitle_size: SubtitleSize,
    /// Captions on a dark box (true) or with an outline only (false).
    pub subtitle_background: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            audio_language: None,
            subtitle_language: None,
            subtitles: SubtitleMode::Off,
            subtitle_size: SubtitleSize::M,
            subtitle_background: true,
        }
    }
}

/// Key of a history entry: newest first within a user's prefix (by timestamp, then by
/// write order).
pub fn history_key(user: &UserId, progress: &Progress, movie: &str) -> Vec<u8> {
    let mut suffix = Vec::with_capacity(16 + movie.len());
    suffix.extend_from_slice(&(u64::MAX - progress.updated_at_ms).to_be_bytes());
    suffix.extend_from_slice(&(u64::MAX - progress.seq).to_be_bytes());
    suffix.extend_from_slice(movie.as_bytes());
    user.key(&suffix)
}

/// Which subscription emails went out for one subscription period (`until`); a new period
/// (another `until`) starts with a fresh record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubNotice {
    pub until: Option<u64>,
    pub started: bool,
    pub warned: bool,
    pub expired: bool,
}

/// Where a movie request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for an admin's approval (when approval is required).
    Pending,
    /// Waiting for a node to claim it.
    Open,
    Claimed,
    Downloading,
    Transcoding,
    Ready,
    Failed,
    Rejected,
}

impl RequestState {
    /// Ready, failed and rejected requests are finished: a new ask starts a new request.
    pub fn finished(self) -> bool {
        matches!(self, Self::Ready | Self::Failed | Self::Rejected)
    }
}

/// One user's ask, joined to a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Requester {
    pub user: UserId,
    /// The public URL of the node the user asked through (for the link in the email).
    pub node_url: Option<String>,
    pub asked_at_ms: u64,
}

/// The node working on a request, until `lease_until_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    pub node: String,
    /// Random; a node proves it still holds this claim with it.
    pub token: String,
    pub lease_until_ms: u64,
}

/// A movie request and everyone who asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MovieRequest {
    pub id: u64,
    pub tmdb_id: u64,
    pub title: Option<String>,
    pub year: Option<u16>,
    pub magnet: Option<String>,
    pub torrent: Option<Vec<u8>>,
    pub requesters: Vec<Requester>,
    pub state: RequestState,
    pub percent: f32,
    pub reason: Option<String>,
    pub lease: Option<Lease>,
    /// Claims so far (a lease that lapsed counts).
    pub attempts: u32,
    pub movie_id: Option<String>,
    pub manifest: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// An in-app notification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notification {
    pub id: u64,
    pub kind: String,
    pub message: String,
    pub link: Option<String>,
    pub request_id: Option<u64>,
    pub created_at_ms: u64,
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
