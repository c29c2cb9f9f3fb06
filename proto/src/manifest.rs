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

/// The manifest format version this crate writes and accepts.
pub const MANIFEST_VERSION: u8 = 1;
/// Most renditions in one manifest.
pub const MAX_TRACKS: usize = 8;
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
    /// What this track is.
    pub rendition: Rendition,
    /// The init segment (`EXT-X-MAP`); required for fMP4, absent or present for MPEG-TS.
    pub init: Option<SegmentEntry>,
    /// Media segments in playback order.
    pub segments: Vec<SegmentEntry>,
}

impl Track {
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
    /// Format version, [`MANIFEST_VERSION`].
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
    /// One track per rendition, 1..=8.
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

    /// Checks every bound and consistency rule. [`SignedManifest::sign`] and
    /// [`SignedManifest::verify`] call it, so a verified manifest is always valid.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::invalid("manifest", reason));
        if self.version != MANIFEST_VERSION {
            return bad(format!(
                "version {} is not supported (expected {MANIFEST_VERSION})",
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
        let total = self.segment_count();
        if total > MAX_TOTAL_SEGMENTS {
            return bad(format!(
                "{total} segments over all tracks (max {MAX_TOTAL_SEGMENTS})"
            ));
        }
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
            match (&track.init, self.container) {
                (None, Container::Fmp4) => {
                    return bad(format!("fMP4 track {name} has no init segment"));
                }
                (Some(init), _) => check_size(name, "init", init)?,
                (None, Container::MpegTs) => {}
            }
            for (j, seg) in track.segments.iter().enumerate() {
                if seg.duration_ms == 0 || seg.duration_ms > MAX_SEGMENT_DURATION_MS {
                    return bad(format!(
                        "track {name} segment {j}: duration {} ms is outside 1-{MAX_SEGMENT_DURATION_MS}",
                        seg.duration_ms
                    ));
                }
                check_size(name, "media", seg)?;
            }
        }
        Ok(())
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
        let manifest: Manifest = codec::decode::<_, MAX_MANIFEST_BYTES>(&self.manifest_bytes)?;
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
/// with one rung plays for everyone. Audio-only tracks are never premium.
pub fn premium_tracks(manifest: &Manifest, premium: usize) -> Vec<bool> {
    let mut video: Vec<usize> = (0..manifest.tracks.len())
        .filter(|&i| !manifest.tracks[i].rendition.is_audio_only())
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
