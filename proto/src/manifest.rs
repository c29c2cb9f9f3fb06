//! Manifests: one ingest of one movie, signed by the ingesting node.
//!
//! A [`Manifest`] lists the renditions of an HLS ladder and, per rendition, the init segment
//! and the ordered media segments by hash. While an ingest runs the manifest grows: the node
//! re-signs it with a higher `seq` and the same `ingest_id`, so peers can tell "newer version
//! of the same ingest" from "a different ingest of the same movie".
//!
//! A [`SignedManifest`] is what travels: the canonical encoded manifest plus an ed25519
//! signature by `manifest.origin` (see [`crate::sign`]). It is named by the BLAKE3 of its
//! encoding, its [`ManifestId`]. [`SignedManifest::verify`] is the only way to get a
//! `Manifest` out of untrusted bytes: it decodes with limits, validates every bound, then
//! checks the signature.

use ed25519_dalek::{Signature, SigningKey};
use serde::{Deserialize, Serialize};

use crate::codec::{self, MAX_MANIFEST_BYTES, MAX_SIGNED_MANIFEST_BYTES};
use crate::error::{DecodeError, ProtoError};
use crate::ids::{ManifestId, MovieId, NodeId, SegmentHash};
use crate::sign::{self, MANIFEST_CONTEXT};
use crate::transfer::{SegmentRef, MAX_SEGMENT_BYTES};

/// The manifest format version this crate writes. It also reads version 1 (see
/// [`Manifest::decode`]).
pub const MANIFEST_VERSION: u8 = 2;
/// The first manifest format: untyped tracks, audio muxed into every rung.
pub const MANIFEST_VERSION_V1: u8 = 1;
/// Most video rungs ([`TrackKind::Video`]) in one manifest.
pub const MAX_VIDEO_TRACKS: usize = 8;
/// Most audio source streams an ingest turns into renditions.
pub const MAX_AUDIO_STREAMS: usize = 16;
/// Most audio tracks: every audio stream in stereo plus, for surround sources, 5.1.
pub const MAX_AUDIO_TRACKS: usize = 2 * MAX_AUDIO_STREAMS;
/// Most subtitle tracks.
pub const MAX_SUBTITLE_TRACKS: usize = 16;
/// Most thumbnail tracks.
pub const MAX_THUMBNAIL_TRACKS: usize = 2;
/// Most tracks in one manifest, all kinds together.
pub const MAX_TRACKS: usize =
    MAX_VIDEO_TRACKS + MAX_AUDIO_TRACKS + MAX_SUBTITLE_TRACKS + MAX_THUMBNAIL_TRACKS;
/// Most audio channels of one rendition (7.1).
pub const MAX_AUDIO_CHANNELS: u8 = 8;
/// Longest HLS `GROUP-ID`, in bytes.
pub const MAX_GROUP_LEN: usize = 32;
/// Longest language tag, in bytes (BCP 47 allows 35).
pub const MAX_LANGUAGE_LEN: usize = 35;
/// Longest display name of an audio or subtitle rendition, in bytes.
pub const MAX_MEDIA_NAME_LEN: usize = 64;
/// Shortest time between two thumbnails.
pub const MIN_THUMBNAIL_INTERVAL_MS: u32 = 100;
/// Longest time between two thumbnails (10 minutes).
pub const MAX_THUMBNAIL_INTERVAL_MS: u32 = 600_000;
/// Largest thumbnail tile side, in pixels.
pub const MAX_THUMBNAIL_TILE: u16 = 1024;
/// Most tiles per row or column of a sprite sheet.
pub const MAX_THUMBNAIL_GRID: u8 = 32;
/// The `GROUP-ID` of the stereo AAC audio renditions.
pub const AUDIO_GROUP_STEREO: &str = "aud-stereo";
/// The `GROUP-ID` of the 5.1 AAC audio renditions.
pub const AUDIO_GROUP_SURROUND: &str = "aud-surround";
/// The `GROUP-ID` of the subtitle renditions.
pub const SUBTITLE_GROUP: &str = "subs";
/// Most media segments in one track (20 000 × 6 s ≈ 33 hours).
pub const MAX_SEGMENTS_PER_TRACK: usize = 20_000;
/// Most media segments over all tracks; keeps any valid manifest under
/// [`MAX_MANIFEST_BYTES`].
pub const MAX_TOTAL_SEGMENTS: usize = 80_000;
/// Longest segment or target duration: 60 s.
pub const MAX_SEGMENT_DURATION_MS: u32 = 60_000;
/// Longest title, in bytes.
pub const MAX_TITLE_LEN: usize = 512;
/// Longest rendition name, in bytes.
pub const MAX_RENDITION_NAME_LEN: usize = 32;
/// Longest codecs string, in bytes.
pub const MAX_CODECS_LEN: usize = 128;
/// Largest width or height.
pub const MAX_DIMENSION: u32 = 16_384;
/// Highest frame rate, in thousandths of a frame per second (1000 fps).
pub const MAX_FRAME_RATE_MILLI: u32 = 1_000_000;
/// Longest movie overview, in bytes (4 KiB).
pub const MAX_OVERVIEW_LEN: usize = 4096;
/// Most genres of one movie.
pub const MAX_GENRES: usize = 16;
/// Longest genre name, in bytes.
pub const MAX_GENRE_LEN: usize = 64;

/// What a viewer reads about a movie beyond its title and year. It travels inside the
/// signed [`Manifest`], so every node can show it without asking TMDb; images are named by
/// the BLAKE3 hash of their bytes and fetched (and verified) like segments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MovieMeta {
    /// Plot summary, at most [`MAX_OVERVIEW_LEN`] bytes; empty when unknown. Newlines and
    /// tabs are allowed, other control characters are not.
    pub overview: String,
    /// Genre names such as `Action`: at most [`MAX_GENRES`], each 1-[`MAX_GENRE_LEN`] bytes
    /// without control characters.
    pub genres: Vec<String>,
    /// Running time in minutes, if known.
    pub runtime_min: Option<u16>,
    /// BLAKE3 of the poster image (PNG, JPEG or WebP).
    pub poster: Option<SegmentHash>,
    /// BLAKE3 of the backdrop image (PNG, JPEG or WebP).
    pub backdrop: Option<SegmentHash>,
    /// The movie's TMDb id, if known.
    pub tmdb_id: Option<u64>,
    /// How long the ingest's source is, in milliseconds, when the ingest knows it: peers
    /// compare it with the manifest's duration to show how far a running ingest is.
    pub expected_duration_ms: Option<u64>,
}

impl MovieMeta {
    /// Checks the bounds and character sets.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::invalid("movie metadata", reason));
        if self.overview.len() > MAX_OVERVIEW_LEN {
            return bad(format!(
                "overview is {} bytes (max {MAX_OVERVIEW_LEN})",
                self.overview.len()
            ));
        }
        if self
            .overview
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return bad("overview has control characters".to_owned());
        }
        if self.genres.len() > MAX_GENRES {
            return bad(format!("{} genres (max {MAX_GENRES})", self.genres.len()));
        }
        for g in &self.genres {
            if g.trim().is_empty() || g.len() > MAX_GENRE_LEN || g.chars().any(char::is_control) {
                return bad(format!(
                    "genre {:?} must be 1-{MAX_GENRE_LEN} bytes without control characters",
                    truncate(g)
                ));
            }
        }
        Ok(())
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One rung of the ABR ladder, as HLS `EXT-X-STREAM-INF` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rendition {
    /// Short name, used in playlist URLs: `[A-Za-z0-9._-]`, not starting with `.`, e.g.
    /// `720p` or `audio-en`.
    pub name: String,
    /// Width in pixels; 0 together with `height` for an audio-only rendition.
    pub width: u32,
    /// Height in pixels; 0 together with `width` for an audio-only rendition.
    pub height: u32,
    /// Peak bandwidth in bits per second (HLS `BANDWIDTH`), > 0.
    pub bandwidth: u32,
    /// RFC 6381 codecs (HLS `CODECS`), e.g. `avc1.64001f,mp4a.40.2`. Restricted to
    /// `[A-Za-z0-9.,+_-]` so it can be written into a quoted playlist attribute verbatim.
    pub codecs: String,
    /// Frame rate in thousandths of a frame per second (23.976 fps = 23976); 0 if unknown
    /// or audio-only.
    pub frame_rate_milli: u32,
}

impl Rendition {
    /// True for an audio-only rendition (no picture).
    pub fn is_audio_only(&self) -> bool {
        self.width == 0 && self.height == 0
    }

    /// Checks the rendition's bounds and character sets.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::invalid("rendition", reason));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_RENDITION_NAME_LEN
            && !self.name.starts_with('.')
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            return bad(format!(
                "name {:?} must be 1-{MAX_RENDITION_NAME_LEN} of [A-Za-z0-9._-], not starting with '.'",
                truncate(&self.name)
            ));
        }
        let codecs_ok = !self.codecs.is_empty()
            && self.codecs.len() <= MAX_CODECS_LEN
            && self.codecs.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b',' | b'+' | b'_' | b'-')
            });
        if !codecs_ok {
            return bad(format!(
                "{}: codecs {:?} must be 1-{MAX_CODECS_LEN} of [A-Za-z0-9.,+_-]",
                self.name,
                truncate(&self.codecs)
            ));
        }
        if (self.width == 0) != (self.height == 0) {
            return bad(format!(
                "{}: width and height must both be 0 (audio-only) or both > 0",
                self.name
            ));
        }
        if self.width > MAX_DIMENSION || self.height > MAX_DIMENSION {
            return bad(format!(
                "{}: {}x{} exceeds {MAX_DIMENSION}",
                self.name, self.width, self.height
            ));
        }
        if self.bandwidth == 0 {
            return bad(format!("{}: bandwidth must be > 0", self.name));
        }
        if self.frame_rate_milli > MAX_FRAME_RATE_MILLI {
            return bad(format!(
                "{}: frame rate {} exceeds {MAX_FRAME_RATE_MILLI}",
                self.name, self.frame_rate_milli
            ));
        }
        Ok(())
    }
}

/// What a track carries. Serialized as part of the manifest, so the variant order is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrackKind {
    /// A variant stream (HLS `EXT-X-STREAM-INF`): one video rung. In a v2 manifest with
    /// audio tracks its segments carry no audio; in a v1 manifest (decoded into this type)
    /// audio is muxed in, and a v1 audio-only rung is a `Video` track with a 0×0 rendition.
    Video,
    /// One audio rendition (`EXT-X-MEDIA:TYPE=AUDIO`): audio-only segments on the shared
    /// timeline, shared by every video rung. Needs [`Track::media`] with 1..=8 channels.
    Audio,
    /// One subtitle rendition (`EXT-X-MEDIA:TYPE=SUBTITLES`): WebVTT segments, no init
    /// segment, entry `i` aligned with video segment `i`. Needs [`Track::media`].
    Subtitles,
    /// Seek thumbnails: each segment is a JPEG sprite sheet of up to `columns × rows`
    /// tiles, one tile every `interval_ms`; no init segment, no alignment with the video.
    Thumbnails(ThumbnailGrid),
}

/// The layout of a thumbnail track's sprite sheets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ThumbnailGrid {
    /// Time between two tiles, 100..=[`MAX_THUMBNAIL_INTERVAL_MS`].
    pub interval_ms: u32,
    /// Tile width in pixels, 1..=[`MAX_THUMBNAIL_TILE`].
    pub tile_width: u16,
    /// Tile height in pixels, 1..=[`MAX_THUMBNAIL_TILE`].
    pub tile_height: u16,
    /// Tiles per row of a sheet, 1..=[`MAX_THUMBNAIL_GRID`].
    pub columns: u8,
    /// Rows of a sheet, 1..=[`MAX_THUMBNAIL_GRID`].
    pub rows: u8,
}

impl ThumbnailGrid {
    /// The most playback time one sheet covers, in milliseconds.
    pub fn sheet_duration_ms(&self) -> u64 {
        u64::from(self.interval_ms) * u64::from(self.columns) * u64::from(self.rows)
    }

    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let ok = (MIN_THUMBNAIL_INTERVAL_MS..=MAX_THUMBNAIL_INTERVAL_MS)
            .contains(&self.interval_ms)
            && (1..=MAX_THUMBNAIL_TILE).contains(&self.tile_width)
            && (1..=MAX_THUMBNAIL_TILE).contains(&self.tile_height)
            && (1..=MAX_THUMBNAIL_GRID).contains(&self.columns)
            && (1..=MAX_THUMBNAIL_GRID).contains(&self.rows);
        if ok {
            Ok(())
        } else {
            Err(ProtoError::invalid(
                "thumbnail grid",
                format!("{self:?} is outside interval {MIN_THUMBNAIL_INTERVAL_MS}-{MAX_THUMBNAIL_INTERVAL_MS} ms, tile 1-{MAX_THUMBNAIL_TILE} px, grid 1-{MAX_THUMBNAIL_GRID}"),
            ))
        }
    }
}

/// What a player shows about an audio or subtitle rendition (HLS `EXT-X-MEDIA`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaInfo {
    /// HLS `GROUP-ID`: 1-[`MAX_GROUP_LEN`] of `[A-Za-z0-9._-]`, e.g. [`AUDIO_GROUP_STEREO`].
    pub group: String,
    /// BCP 47 / ISO 639 language as the source gave it (`en`, `eng`, `pt-BR`):
    /// 1-[`MAX_LANGUAGE_LEN`] of `[A-Za-z0-9-]`; `None` when unknown.
    pub language: Option<String>,
    /// Display name (HLS `NAME`): 1-[`MAX_MEDIA_NAME_LEN`] bytes, no control characters, no `"`.
    pub name: String,
    /// Audio channels, 1..=8; 0 for subtitles.
    pub channels: u8,
    /// HLS `DEFAULT`.
    pub default: bool,
    /// HLS `AUTOSELECT`.
    pub autoselect: bool,
    /// HLS `FORCED` (subtitles only: shown even when the viewer chose none).
    pub forced: bool,
    /// Bit flags: [`MediaInfo::COMMENTARY`], [`MediaInfo::DESCRIBES_VIDEO`],
    /// [`MediaInfo::HEARING_IMPAIRED`]; other bits must be 0.
    pub characteristics: u8,
}

impl MediaInfo {
    /// A commentary track (labelled in the playlist's `NAME`).
    pub const COMMENTARY: u8 = 1;
    /// Audio description for the visually impaired
    /// (`public.accessibility.describes-video`).
    pub const DESCRIBES_VIDEO: u8 = 2;
    /// Subtitles for the deaf and hard of hearing (SDH)
    /// (`public.accessibility.transcribes-spoken-dialog`).
    pub const HEARING_IMPAIRED: u8 = 4;
    const KNOWN: u8 = Self::COMMENTARY | Self::DESCRIBES_VIDEO | Self::HEARING_IMPAIRED;

    /// True when `flag` (one of the consts) is set.
    pub fn has(&self, flag: u8) -> bool {
        self.characteristics & flag != 0
    }

    /// Checks the bounds and character sets.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::invalid("media info", reason));
        if !is_group_id(&self.group) {
            return bad(format!(
                "group {:?} must be 1-{MAX_GROUP_LEN} of [A-Za-z0-9._-]",
                truncate(&self.group)
            ));
        }
        if let Some(lang) = &self.language {
            let ok = !lang.is_empty()
                && lang.len() <= MAX_LANGUAGE_LEN
                && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return bad(format!(
                    "language {:?} must be 1-{MAX_LANGUAGE_LEN} of [A-Za-z0-9-]",
                    truncate(lang)
                ));
            }
        }
        if self.name.trim().is_empty()
            || self.name.len() > MAX_MEDIA_NAME_LEN
            || self.name.chars().any(|c| c.is_control() || c == '"')
        {
            return bad(format!(
                "name {:?} must be 1-{MAX_MEDIA_NAME_LEN} bytes without control characters or '\"'",
                truncate(&self.name)
            ));
        }
        if self.channels > MAX_AUDIO_CHANNELS {
            return bad(format!(
                "{} channels (max {MAX_AUDIO_CHANNELS})",
                self.channels
            ));
        }
        if self.characteristics & !Self::KNOWN != 0 {
            return bad(format!(
                "unknown characteristics bits {:#x}",
                self.characteristics
            ));
        }
        Ok(())
    }
}

fn is_group_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_GROUP_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One segment as listed in a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// BLAKE3 of the segment's bytes.
    pub hash: SegmentHash,
    /// Playback duration in milliseconds (0 for init segments).
    pub duration_ms: u32,
    /// Size in bytes, 1..=[`MAX_SEGMENT_BYTES`].
    pub size: u32,
}

/// One rendition's segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Track {
    /// Name, codecs and bandwidth. Audio, subtitle and thumbnail tracks have a 0×0
    /// rendition (thumbnails: `codecs` is `jpeg`).
    pub rendition: Rendition,
    /// What the track carries.
    pub kind: TrackKind,
    /// Group, language, name and flags; required for audio and subtitle tracks.
    pub media: Option<MediaInfo>,
    /// The init segment (`EXT-X-MAP`); required for fMP4 video and audio tracks, absent or
    /// present for MPEG-TS, absent for subtitle and thumbnail tracks.
    pub init: Option<SegmentEntry>,
    /// Media segments in playback order.
    pub segments: Vec<SegmentEntry>,
}

impl Track {
    /// A video rung (no [`MediaInfo`]).
    pub fn video(
        rendition: Rendition,
        init: Option<SegmentEntry>,
        segments: Vec<SegmentEntry>,
    ) -> Self {
        Self {
            rendition,
            kind: TrackKind::Video,
            media: None,
            init,
            segments,
        }
    }

    /// True for a variant stream (a video rung, or a v1 audio-only rung).
    pub fn is_video(&self) -> bool {
        self.kind == TrackKind::Video
    }

    /// The file extension of this track's media segments in `container`, without the dot:
    /// `m4s`/`ts` for video and audio, `vtt` for subtitles, `jpg` for thumbnails.
    pub fn segment_extension(&self, container: Container) -> &'static str {
        match self.kind {
            TrackKind::Video | TrackKind::Audio => container.segment_extension(),
            TrackKind::Subtitles => "vtt",
            TrackKind::Thumbnails(_) => "jpg",
        }
    }

    /// Total playback duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.duration_ms)).sum()
    }

    /// Number of media segments (the init segment is not counted).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Total bytes of the init and media segments.
    pub fn size_bytes(&self) -> u64 {
        self.init
            .iter()
            .chain(&self.segments)
            .map(|s| u64::from(s.size))
            .sum()
    }

    /// The longest media segment, in milliseconds (0 when there are none).
    pub fn max_segment_duration_ms(&self) -> u32 {
        self.segments
            .iter()
            .map(|s| s.duration_ms)
            .max()
            .unwrap_or(0)
    }
}

/// The container format of every segment in a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Container {
    /// Fragmented MP4 (CMAF): an init segment plus `.m4s` media segments.
    Fmp4,
    /// MPEG-2 transport stream `.ts` segments.
    MpegTs,
}

impl Container {
    /// The file extension of a media segment, without the dot.
    pub fn segment_extension(self) -> &'static str {
        match self {
            Container::Fmp4 => "m4s",
            Container::MpegTs => "ts",
        }
    }
}

/// One ingest of one movie. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version: [`MANIFEST_VERSION`] for everything this crate writes;
    /// [`MANIFEST_VERSION_V1`] for a stored v1 manifest read through [`Manifest::decode`].
    pub version: u8,
    /// The movie this is an ingest of.
    pub movie: MovieId,
    /// Display title, 1-512 bytes, no control characters.
    pub title: String,
    /// Release year, if known (1870-2999).
    pub year: Option<u16>,
    /// The ingesting node; the manifest must be signed by its key.
    pub origin: NodeId,
    /// Random id of this ingest, the same across re-signs of a growing manifest.
    pub ingest_id: [u8; 16],
    /// Version of this ingest's manifest; grows with every re-sign.
    pub seq: u64,
    /// Unix seconds when this version was signed.
    pub created_at: u64,
    /// Segment container format.
    pub container: Container,
    /// The HLS target duration in milliseconds (1..=60 000). Playlists should advertise
    /// `ceil(max(target, longest segment) / 1000)` seconds.
    pub target_duration_ms: u32,
    /// One track per rendition: 1..=[`MAX_TRACKS`], at most [`MAX_VIDEO_TRACKS`] video,
    /// [`MAX_AUDIO_TRACKS`] audio, [`MAX_SUBTITLE_TRACKS`] subtitle and
    /// [`MAX_THUMBNAIL_TRACKS`] thumbnail tracks, at least one video or audio track.
    pub tracks: Vec<Track>,
    /// True once ingest has finished; no more segments will be appended.
    pub complete: bool,
    /// Overview, genres, runtime, images: what the ingest knew about the movie.
    pub meta: MovieMeta,
}

impl Manifest {
    /// Duration of the longest track, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.tracks
            .iter()
            .map(Track::duration_ms)
            .max()
            .unwrap_or(0)
    }

    /// Media segments over all tracks.
    pub fn segment_count(&self) -> usize {
        self.tracks.iter().map(Track::segment_count).sum()
    }

    /// Finds the track named `name`.
    pub fn track_by_name(&self, name: &str) -> Option<(u16, &Track)> {
        self.tracks
            .iter()
            .enumerate()
            .find(|(_, t)| t.rendition.name == name)
            .and_then(|(i, t)| Some((u16::try_from(i).ok()?, t)))
    }

    /// Resolves a segment reference of a [`SegmentRequest`](crate::SegmentRequest) to its
    /// entry, if this manifest lists it in `track`.
    pub fn resolve(&self, track: u16, segment: &SegmentRef) -> Option<&SegmentEntry> {
        let t = self.tracks.get(usize::from(track))?;
        match segment {
            SegmentRef::Init => t.init.as_ref(),
            SegmentRef::Index(i) => t.segments.get(usize::try_from(*i).ok()?),
            SegmentRef::Hash(h) => t
                .init
                .iter()
                .chain(&t.segments)
                .find(|entry| entry.hash == *h),
        }
    }

    /// Decodes a manifest body (with limits, canonical encodings only) of either format:
    /// version 1 bodies are read into this type with every track a [`TrackKind::Video`]
    /// (audio muxed in) and `version` left at [`MANIFEST_VERSION_V1`], so the signed bytes
    /// stay the ones the signature covers. Does not validate.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        // `version` is the first field; bincode writes a u8 as one raw byte.
        if bytes.first() == Some(&MANIFEST_VERSION_V1) {
            let v1: v1::Manifest = codec::decode::<_, MAX_MANIFEST_BYTES>(bytes)?;
            return Ok(v1.into());
        }
        codec::decode::<_, MAX_MANIFEST_BYTES>(bytes)
    }

    /// Tracks of one kind (compared without the thumbnail grid).
    pub fn tracks_of(&self, kind: TrackKind) -> impl Iterator<Item = (u16, &Track)> {
        self.tracks
            .iter()
            .enumerate()
            .filter(move |(_, t)| std::mem::discriminant(&t.kind) == std::mem::discriminant(&kind))
            .filter_map(|(i, t)| Some((u16::try_from(i).ok()?, t)))
    }

    /// Checks every bound and consistency rule. [`SignedManifest::sign`] and
    /// [`SignedManifest::verify`] call it, so a verified manifest is always valid.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::invalid("manifest", reason));
        if self.version != MANIFEST_VERSION && self.version != MANIFEST_VERSION_V1 {
            return bad(format!(
                "version {} is not supported (expected {MANIFEST_VERSION_V1} or {MANIFEST_VERSION})",
                self.version
            ));
        }
        if self.title.is_empty()
            || self.title.len() > MAX_TITLE_LEN
            || self.title.chars().any(char::is_control)
        {
            return bad(format!(
                "title must be 1-{MAX_TITLE_LEN} bytes without control characters"
            ));
        }
        if let Some(year) = self.year {
            if !(1870..=2999).contains(&year) {
                return bad(format!("year {year} is outside 1870-2999"));
            }
        }
        self.meta.validate()?;
        if self.target_duration_ms == 0 || self.target_duration_ms > MAX_SEGMENT_DURATION_MS {
            return bad(format!(
                "target duration {} ms is outside 1-{MAX_SEGMENT_DURATION_MS}",
                self.target_duration_ms
            ));
        }
        if self.tracks.is_empty() || self.tracks.len() > MAX_TRACKS {
            return bad(format!(
                "{} tracks (must be 1-{MAX_TRACKS})",
                self.tracks.len()
            ));
        }
        let count = |k: TrackKind| self.tracks_of(k).count();
        let grid = ThumbnailGrid {
            interval_ms: 0,
            tile_width: 0,
            tile_height: 0,
            columns: 0,
            rows: 0,
        };
        let (videos, audios, subs, thumbs) = (
            count(TrackKind::Video),
            count(TrackKind::Audio),
            count(TrackKind::Subtitles),
            count(TrackKind::Thumbnails(grid)),
        );
        for (n, max, what) in [
            (videos, MAX_VIDEO_TRACKS, "video"),
            (audios, MAX_AUDIO_TRACKS, "audio"),
            (subs, MAX_SUBTITLE_TRACKS, "subtitle"),
            (thumbs, MAX_THUMBNAIL_TRACKS, "thumbnail"),
        ] {
            if n > max {
                return bad(format!("{n} {what} tracks (max {max})"));
            }
        }
        if videos + audios == 0 {
            return bad("no video or audio track".to_owned());
        }
        if self.version == MANIFEST_VERSION_V1 && videos != self.tracks.len() {
            return bad("a version 1 manifest has only video tracks".to_owned());
        }
        let total = self.segment_count();
        if total > MAX_TOTAL_SEGMENTS {
            return bad(format!(
                "{total} segments over all tracks (max {MAX_TOTAL_SEGMENTS})"
            ));
        }
        // Subtitle segment i covers video segment i: the first video rung sets the count.
        let video_segments = self
            .tracks_of(TrackKind::Video)
            .next()
            .map(|(_, t)| t.segments.len());
        for (i, track) in self.tracks.iter().enumerate() {
            track.rendition.validate()?;
            let name = &track.rendition.name;
            if self.tracks[..i].iter().any(|t| &t.rendition.name == name) {
                return bad(format!("two tracks are named {name}"));
            }
            if track.segments.len() > MAX_SEGMENTS_PER_TRACK {
                return bad(format!(
                    "track {name} has {} segments (max {MAX_SEGMENTS_PER_TRACK})",
                    track.segments.len()
                ));
            }
            if self.complete && track.segments.is_empty() {
                return bad(format!(
                    "complete manifest but track {name} has no segments"
                ));
            }
            if let Some(media) = &track.media {
                media.validate()?;
            }
            let mut max_duration = u64::from(MAX_SEGMENT_DURATION_MS);
            let needs_init = match (&track.kind, &track.media) {
                (TrackKind::Video, _) => true,
                (TrackKind::Audio, Some(media)) => {
                    if !track.rendition.is_audio_only() {
                        return bad(format!("audio track {name} must have a 0x0 rendition"));
                    }
                    if media.channels == 0 || media.forced {
                        return bad(format!(
                            "audio track {name}: channels must be 1-{MAX_AUDIO_CHANNELS}, forced unset"
                        ));
                    }
                    true
                }
                (TrackKind::Subtitles, Some(media)) => {
                    if !track.rendition.is_audio_only() || media.channels != 0 {
                        return bad(format!(
                            "subtitle track {name} must have a 0x0 rendition and 0 channels"
                        ));
                    }
                    if let (true, Some(n)) = (self.complete, video_segments) {
                        if track.segments.len() != n {
                            return bad(format!(
                                "subtitle track {name} has {} segments, the video {n}",
                                track.segments.len()
                            ));
                        }
                    }
                    false
                }
                (TrackKind::Audio | TrackKind::Subtitles, None) => {
                    return bad(format!("track {name} has no media info"));
                }
                (TrackKind::Thumbnails(grid), media) => {
                    grid.validate()?;
                    if !track.rendition.is_audio_only() || media.is_some() {
                        return bad(format!(
                            "thumbnail track {name} must have a 0x0 rendition and no media info"
                        ));
                    }
                    max_duration = grid.sheet_duration_ms();
                    false
                }
            };
            match (&track.init, self.container, needs_init) {
                (Some(_), _, false) => {
                    return bad(format!("track {name} must not have an init segment"));
                }
                (None, Container::Fmp4, true) => {
                    return bad(format!("fMP4 track {name} has no init segment"));
                }
                (Some(init), _, true) => check_size(name, "init", init)?,
                (None, _, _) => {}
            }
            for (j, seg) in track.segments.iter().enumerate() {
                if seg.duration_ms == 0 || u64::from(seg.duration_ms) > max_duration {
                    return bad(format!(
                        "track {name} segment {j}: duration {} ms is outside 1-{max_duration}",
                        seg.duration_ms
                    ));
                }
                check_size(name, "media", seg)?;
            }
        }
        Ok(())
    }
}

/// The version 1 format, read-only: stored v1 manifests decode through it.
mod v1 {
    use serde::Deserialize;
    use serde::Serialize;

    use super::{Container, MovieMeta, Rendition, SegmentEntry};
    use crate::ids::{MovieId, NodeId};

    #[derive(Serialize, Deserialize)]
    pub(super) struct Track {
        rendition: Rendition,
        init: Option<SegmentEntry>,
        segments: Vec<SegmentEntry>,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Manifest {
        version: u8,
        movie: MovieId,
        title: String,
        year: Option<u16>,
        origin: NodeId,
        ingest_id: [u8; 16],
        seq: u64,
        created_at: u64,
        container: Container,
        target_duration_ms: u32,
        tracks: Vec<Track>,
        complete: bool,
        meta: MovieMeta,
    }

    impl From<Manifest> for super::Manifest {
        fn from(m: Manifest) -> Self {
            Self {
                version: m.version,
                movie: m.movie,
                title: m.title,
                year: m.year,
                origin: m.origin,
                ingest_id: m.ingest_id,
                seq: m.seq,
                created_at: m.created_at,
                container: m.container,
                target_duration_ms: m.target_duration_ms,
                tracks: m
                    .tracks
                    .into_iter()
                    .map(|t| super::Track::video(t.rendition, t.init, t.segments))
                    .collect(),
                complete: m.complete,
                meta: m.meta,
            }
        }
    }

    /// Encodes `m` in the v1 format (tests of the compatibility path).
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    pub(super) fn encode(m: &super::Manifest) -> Vec<u8> {
        let v1 = Manifest {
            version: super::MANIFEST_VERSION_V1,
            movie: m.movie.clone(),
            title: m.title.clone(),
            year: m.year,
            origin: m.origin,
            ingest_id: m.ingest_id,
            seq: m.seq,
            created_at: m.created_at,
            container: m.container,
            target_duration_ms: m.target_duration_ms,
            tracks: m
                .tracks
                .iter()
                .map(|t| Track {
                    rendition: t.rendition.clone(),
                    init: t.init,
                    segments: t.segments.clone(),
                })
                .collect(),
            complete: m.complete,
            meta: m.meta.clone(),
        };
        crate::codec::encode::<_, { crate::codec::MAX_MANIFEST_BYTES }>(&v1).unwrap_or_default()
    }
}

fn check_size(track: &str, kind: &str, seg: &SegmentEntry) -> Result<(), ProtoError> {
    if seg.size == 0 || u64::from(seg.size) > MAX_SEGMENT_BYTES {
        return Err(ProtoError::invalid(
            "manifest",
            format!(
                "track {track}: {kind} segment {} has size {} (must be 1-{MAX_SEGMENT_BYTES})",
                seg.hash, seg.size
            ),
        ));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A manifest as it travels: canonical manifest bytes plus the origin's signature.
///
/// Obtain one with [`SignedManifest::sign`] or [`SignedManifest::decode`]; read the manifest
/// with [`SignedManifest::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    manifest_bytes: Vec<u8>,
    signature: Signature,
}

impl SignedManifest {
    /// Validates, encodes and signs `manifest`. `key` must be `manifest.origin`'s key.
    pub fn sign(manifest: &Manifest, key: &SigningKey) -> Result<Self, ProtoError> {
        sign::check_signer(key, &manifest.origin)?;
        if manifest.version != MANIFEST_VERSION {
            return Err(ProtoError::invalid(
                "manifest",
                format!("only version {MANIFEST_VERSION} manifests are signed"),
            ));
        }
        manifest.validate()?;
        let manifest_bytes = codec::encode::<_, MAX_MANIFEST_BYTES>(manifest)?;
        let signature = sign::sign(key, MANIFEST_CONTEXT, &manifest_bytes);
        Ok(Self {
            manifest_bytes,
            signature,
        })
    }

    /// Decodes the manifest (with limits), validates it and checks the signature against
    /// its `origin`. Only a manifest returned from here may be trusted.
    pub fn verify(&self) -> Result<Manifest, ProtoError> {
        let manifest = Manifest::decode(&self.manifest_bytes)?;
        manifest.validate()?;
        sign::verify(
            &manifest.origin,
            MANIFEST_CONTEXT,
            &self.manifest_bytes,
            &self.signature,
        )?;
        Ok(manifest)
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        sign::encode_envelope(&self.manifest_bytes, &self.signature)
    }

    /// Parses the wire encoding (at most [`MAX_SIGNED_MANIFEST_BYTES`]). Does not verify;
    /// call [`SignedManifest::verify`] next.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (manifest_bytes, signature) =
            sign::decode_envelope::<MAX_SIGNED_MANIFEST_BYTES>(bytes, MAX_MANIFEST_BYTES)?;
        Ok(Self {
            manifest_bytes,
            signature,
        })
    }

    /// The manifest's name: BLAKE3 of [`SignedManifest::encode`].
    pub fn id(&self) -> ManifestId {
        ManifestId::of_signed_bytes(&self.encode())
    }

    /// The signed (unverified) manifest bytes.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// Which tracks of `manifest` only premium viewers get: the top `premium` video
/// renditions (by height, then bandwidth), but never every video rendition — a movie
/// with one rung plays for everyone. Audio-only, audio, subtitle and thumbnail tracks
/// are never premium.
pub fn premium_tracks(manifest: &Manifest, premium: usize) -> Vec<bool> {
    let mut video: Vec<usize> = (0..manifest.tracks.len())
        .filter(|&i| {
            let t = &manifest.tracks[i];
            t.is_video() && !t.rendition.is_audio_only()
        })
        .collect();
    video.sort_by_key(|&i| {
        let r = &manifest.tracks[i].rendition;
        std::cmp::Reverse((r.height, r.bandwidth))
    });
    let locked = premium.min(video.len().saturating_sub(1));
    let mut out = vec![false; manifest.tracks.len()];
    for &i in video.iter().take(locked) {
        out[i] = true;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    fn seg(n: u32, ms: u32) -> SegmentEntry {
        SegmentEntry {
            hash: SegmentHash::of(&n.to_le_bytes()),
            duration_ms: ms,
            size: 100 + n,
        }
    }

    fn rendition(name: &str, w: u32, h: u32, codecs: &str) -> Rendition {
        Rendition {
            name: name.into(),
            width: w,
            height: h,
            bandwidth: 128_000,
            codecs: codecs.into(),
            frame_rate_milli: 0,
        }
    }

    fn media(group: &str, lang: &str, name: &str, channels: u8) -> MediaInfo {
        MediaInfo {
            group: group.into(),
            language: Some(lang.into()),
            name: name.into(),
            channels,
            default: false,
            autoselect: true,
            forced: false,
            characteristics: 0,
        }
    }

    pub(crate) fn typed(key: &SigningKey) -> Manifest {
        let video = Track::video(
            rendition("360p", 640, 360, "avc1.64001e"),
            Some(seg(0, 0)),
            vec![seg(1, 4000), seg(2, 4000)],
        );
        let audio = |name: &str, ch: u8, m: MediaInfo| Track {
            rendition: rendition(name, 0, 0, "mp4a.40.2"),
            kind: TrackKind::Audio,
            media: Some(MediaInfo { channels: ch, ..m }),
            init: Some(seg(10, 0)),
            segments: vec![seg(11, 4000), seg(12, 4000)],
        };
        let subs = Track {
            rendition: rendition("sub-en", 0, 0, "wvtt"),
            kind: TrackKind::Subtitles,
            media: Some(media(SUBTITLE_GROUP, "en", "English", 0)),
            init: None,
            segments: vec![seg(21, 4000), seg(22, 4000)],
        };
        let thumbs = Track {
            rendition: rendition("thumbs", 0, 0, "jpeg"),
            kind: TrackKind::Thumbnails(ThumbnailGrid {
                interval_ms: 5000,
                tile_width: 160,
                tile_height: 90,
                columns: 5,
                rows: 5,
            }),
            media: None,
            init: None,
            segments: vec![seg(31, 125_000)],
        };
        Manifest {
            version: MANIFEST_VERSION,
            movie: MovieId::from_tmdb(603),
            title: "The Matrix".into(),
            year: Some(1999),
            origin: NodeId::from_verifying_key(&key.verifying_key()),
            ingest_id: [2; 16],
            seq: 1,
            created_at: 0,
            container: Container::Fmp4,
            target_duration_ms: 4000,
            tracks: vec![
                video,
                audio("a-en-2", 2, media(AUDIO_GROUP_STEREO, "en", "English", 2)),
                audio("a-de-6", 6, media(AUDIO_GROUP_SURROUND, "de", "Deutsch", 6)),
                subs,
                thumbs,
            ],
            complete: true,
            meta: MovieMeta::default(),
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    #[test]
    fn typed_manifest_signs_and_verifies() {
        let m = typed(&key());
        let signed = SignedManifest::sign(&m, &key()).unwrap();
        let back = SignedManifest::decode(&signed.encode())
            .unwrap()
            .verify()
            .unwrap();
        assert_eq!(back, m);
        assert_eq!(back.tracks_of(TrackKind::Audio).count(), 2);
        assert_eq!(back.tracks[3].segment_extension(back.container), "vtt");
        assert_eq!(back.tracks[4].segment_extension(back.container), "jpg");
    }

    #[test]
    fn validation_rejects_bad_typed_tracks() {
        let k = key();
        let check = |f: &dyn Fn(&mut Manifest), what: &str| {
            let mut m = typed(&k);
            f(&mut m);
            assert!(m.validate().is_err(), "{what} accepted");
            assert!(SignedManifest::sign(&m, &k).is_err());
        };
        check(&|m| m.tracks[1].media = None, "audio without media");
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().channels = 0,
            "audio with 0 channels",
        );
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().channels = 9,
            "9 channels",
        );
        check(
            &|m| m.tracks[1].rendition.width = 640,
            "audio with a picture",
        );
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().group = "a b".into(),
            "group with a space",
        );
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().language = Some("en_US".into()),
            "language with '_'",
        );
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().language = Some("x".repeat(36)),
            "long language",
        );
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().name = "say \"hi\"".into(),
            "name with a quote",
        );
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().name = "a\nb".into(),
            "name with a newline",
        );
        check(
            &|m| m.tracks[1].media.as_mut().unwrap().characteristics = 0x80,
            "unknown characteristics",
        );
        check(&|m| m.tracks[1].init = None, "fMP4 audio without init");
        check(
            &|m| m.tracks[3].init = Some(seg(5, 0)),
            "subtitles with init",
        );
        check(&|m| m.tracks[3].media = None, "subtitles without media");
        check(
            &|m| {
                m.tracks[3].segments.pop();
            },
            "complete subtitles shorter than the video",
        );
        check(
            &|m| m.tracks[4].segments[0].duration_ms = 125_001,
            "thumbnail sheet longer than its grid",
        );
        check(
            &|m| {
                m.tracks[4].kind = TrackKind::Thumbnails(ThumbnailGrid {
                    interval_ms: 5000,
                    tile_width: 0,
                    tile_height: 90,
                    columns: 5,
                    rows: 5,
                })
            },
            "zero tile width",
        );
        check(
            &|m| {
                let a = m.tracks[1].clone();
                for i in 0..MAX_AUDIO_TRACKS {
                    let mut t = a.clone();
                    t.rendition.name = format!("x{i}");
                    m.tracks.push(t);
                }
            },
            "too many audio tracks",
        );
        check(
            &|m| {
                m.tracks
                    .retain(|t| !t.is_video() && t.kind != TrackKind::Audio)
            },
            "no video or audio",
        );
        check(&|m| m.version = MANIFEST_VERSION_V1, "v1 with typed tracks");
        // A growing manifest may have subtitles ahead of or behind the video.
        let mut m = typed(&k);
        m.complete = false;
        m.tracks[3].segments.pop();
        m.validate().unwrap();
    }

    #[test]
    fn v1_manifests_still_verify() {
        let k = key();
        let mut m = typed(&k);
        m.tracks.truncate(1);
        m.tracks[0].rendition.codecs = "avc1.64001e,mp4a.40.2".into();
        let body = v1::encode(&m);
        assert_eq!(body.first(), Some(&MANIFEST_VERSION_V1));
        let signature = sign::sign(&k, MANIFEST_CONTEXT, &body);
        let wire = sign::encode_envelope(&body, &signature);
        let signed = SignedManifest::decode(&wire).unwrap();
        let back = signed.verify().unwrap();
        assert_eq!(back.version, MANIFEST_VERSION_V1);
        assert_eq!(back.tracks[0].kind, TrackKind::Video);
        assert!(back.tracks[0].media.is_none());
        assert_eq!(back.tracks[0].segments, m.tracks[0].segments);
        // The id still names the original signed bytes.
        assert_eq!(signed.id(), ManifestId::of_signed_bytes(&wire));
        assert_eq!(signed.encode(), wire);
        // Re-signing a decoded v1 manifest is refused: it would change format under one id.
        assert!(SignedManifest::sign(&back, &k).is_err());
        // A tampered v1 body fails the signature.
        let mut evil = body.clone();
        let last = evil.len() - 1;
        evil[last] ^= 1;
        let forged = SignedManifest::decode(&sign::encode_envelope(&evil, &signature)).unwrap();
        assert!(forged.verify().is_err());
    }
}
