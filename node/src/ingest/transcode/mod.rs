//! The transcoder: one source (a path or a URL, e.g. a growing torrent download served over
//! loopback HTTP with Range support) in, an HLS ladder of fMP4 (CMAF) or MPEG-TS segments out,
//! handed over as [`TranscodeEvent`]s while they are produced.
//!
//! It owns everything between libavformat's demuxer and finished segment bytes, using the
//! system FFmpeg libraries through `ffmpeg-next` (linked, never a spawned `ffmpeg`). This
//! module holds its public face (the ladder settings, [`probe`]'s [`Plan`], the events, the
//! errors); the work is split along its stages:
//!
//! - `source`: opening the input and what its streams are (codecs, sizes, time bases);
//! - `ladder`: [`probe`] decides the renditions (sizes, codecs strings, which rungs remux);
//! - `timeline`: the segment boundaries every track shares (aligned closed GOPs);
//! - `encoders`: decode once, then per-rung swscale + libx264 on their own threads;
//! - `audio`: every audio stream (up to 16) decoded once and encoded once per audio
//!   rendition (stereo AAC, plus 5.1 AAC for surround sources), or AAC-LC stereo copied;
//!   each audio rendition is its own audio-only track, shared by every video rung;
//! - `segmenter`: each rung's libavformat `hls` muxer, and picking up its finished segments;
//! - `subtitles`: text subtitle streams and sidecar cues → segmented WebVTT;
//! - `thumbnails`: seek thumbnails tiled into JPEG sprite sheets;
//! - `job`: [`transcode`], the decode loop that drives all of the above.
//!
//! Nothing holds more than one segment per rung plus the encoders' look-ahead in memory.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Instant;

use ff::codec::{self, encoder};
use ff::format::{self, Pixel};
use ff::software::scaling;
use ff::{filter, frame, media, picture, ChannelLayout, Dictionary, Packet, Rational};
use ffmpeg_next as ff;
use reelnet_proto::{Container, MediaInfo, Rendition, Track, TrackKind};
use serde::{Deserialize, Serialize};

mod audio;
mod encoders;
mod job;
mod ladder;
mod segmenter;
mod source;
mod subtitles;
mod thumbnails;
mod timeline;

// The stages share their private items with each other through this module.
use audio::*;
use encoders::*;
use job::*;
use segmenter::*;
use source::*;
use subtitles::SubtitlePipe;
use thumbnails::Thumbnailer;
use timeline::*;

pub use job::{transcode, transcode_with};
pub use ladder::probe;
pub use subtitles::{
    probe_subtitles, subtitle_name, SubtitleOrigin, SubtitleProbe, SubtitleTrack,
    UnsupportedSubtitle, MAX_SUBTITLE_TRACKS,
};
pub use thumbnails::{ThumbnailConfig, ThumbnailLayout};

/// One rung of the ABR ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    /// Rendition name, e.g. `720p` (`[A-Za-z0-9._-]`).
    pub name: String,
    /// Target height in pixels; the width follows the source's display aspect ratio.
    pub height: u32,
    /// Target (and maximum) video bitrate, bits per second.
    pub video_bitrate: u32,
    /// AAC bitrate, bits per second (used when the audio is encoded).
    pub audio_bitrate: u32,
}

/// The ladder and segmenting settings (from the node config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LadderConfig {
    /// Rungs, top first; rungs above the source's height are skipped.
    pub rungs: Vec<Rung>,
    /// Target segment length in seconds (1..=60).
    pub segment_secs: u32,
    /// Segment container.
    pub container: Container,
    /// x264 preset, e.g. `veryfast`.
    pub preset: String,
}

impl Default for LadderConfig {
    fn default() -> Self {
        let rung = |name: &str, height, video_bitrate| Rung {
            name: name.to_owned(),
            height,
            video_bitrate,
            audio_bitrate: 128_000,
        };
        Self {
            rungs: vec![
                rung("1080p", 1080, 5_000_000),
                rung("720p", 720, 3_000_000),
                rung("480p", 480, 1_400_000),
                rung("360p", 360, 800_000),
            ],
            segment_secs: 4,
            container: Container::Fmp4,
            preset: "veryfast".to_owned(),
        }
    }
}

impl LadderConfig {
    /// Checks the settings the transcoder relies on.
    pub fn validate(&self) -> Result<(), TranscodeError> {
        let bad = |m: String| Err(TranscodeError::Config(m));
        if self.rungs.is_empty() || self.rungs.len() > reelnet_proto::manifest::MAX_VIDEO_TRACKS {
            return bad(format!(
                "needs 1 to {} rungs",
                reelnet_proto::manifest::MAX_VIDEO_TRACKS
            ));
        }
        if !(1..=60).contains(&self.segment_secs) {
            return bad(format!("segment_secs {} is not 1..=60", self.segment_secs));
        }
        if self.preset.is_empty() || !self.preset.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return bad(format!(
                "x264 preset {:?} is not a preset name",
                self.preset
            ));
        }
        for r in &self.rungs {
            let name_ok = !r.name.is_empty()
                && r.name.len() <= reelnet_proto::manifest::MAX_RENDITION_NAME_LEN
                && !r.name.starts_with('.')
                && r.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !name_ok {
                return bad(format!("rung name {:?} is not [A-Za-z0-9._-]", r.name));
            }
            if !(16..=reelnet_proto::manifest::MAX_DIMENSION).contains(&r.height) {
                return bad(format!("rung {}: height {} out of range", r.name, r.height));
            }
            if r.video_bitrate < 10_000 || r.audio_bitrate < 8_000 {
                return bad(format!("rung {}: bitrate too low", r.name));
            }
        }
        Ok(())
    }
}

/// What the transcoder reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscodeEvent {
    /// Once per track before its first segment (fMP4 only): the init segment bytes.
    Init { track: usize, bytes: Vec<u8> },
    /// A finished media segment of `track`, in order; `index` counts from 0 per track; all
    /// tracks' segment `i` cover the same time span.
    Segment {
        track: usize,
        index: u32,
        bytes: Vec<u8>,
        duration_ms: u32,
    },
    /// Position reached in the source, for progress.
    Progress {
        position_s: f64,
        duration_s: Option<f64>,
    },
}

/// What a transcode makes besides the ladder: subtitle tracks (numbered after the plan's
/// renditions) and then, with `thumbnails`, one thumbnail sheet track. Subtitle segment `i`
/// spans the video's segment `i`; thumbnail segment `i` is sprite sheet `i`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    pub subtitles: Vec<SubtitleTrack>,
    pub thumbnails: Option<ThumbnailLayout>,
}

/// What [`probe`] decided: one track per rendition: the video rungs first (their segments
/// carry no audio), then the audio renditions (all stereo ones, then the 5.1 ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One per track, with RFC 6381 codecs, bandwidth, size and frame rate. Audio tracks
    /// have a 0×0 rendition with codecs `mp4a.40.2`.
    pub renditions: Vec<Rendition>,
    /// The source's duration, if the container knows it.
    pub duration_s: Option<f64>,
    /// Per track: true when the track's video (or, audio-only, its audio) is copied.
    pub remux: Vec<bool>,
    /// Per track: the rung it was made from (an audio-only track has height 0). Its height
    /// may differ from the configured rung when the source is smaller than every rung.
    pub rungs: Vec<Rung>,
    /// `Some(true)` when the first audio stream (AAC-LC) is copied as its stereo rendition,
    /// `Some(false)` when it is encoded to AAC, `None` without audio.
    pub audio_copy: Option<bool>,
    /// Per track: what it carries.
    pub kinds: Vec<TrackKind>,
    /// Per track: group, language, name and flags (audio tracks).
    pub media: Vec<Option<MediaInfo>>,
    /// The audio tracks, in track order.
    pub audio: Vec<AudioTrackPlan>,
    /// Source streams left out, and why (e.g. a 17th audio stream, an undecodable codec).
    pub skipped: Vec<String>,
}

/// One audio rendition of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrackPlan {
    /// Its track number.
    pub track: usize,
    /// The source stream it is made from.
    pub stream: usize,
    /// 1 or 2 (stereo group), 6 (5.1 group).
    pub channels: u8,
    /// The source AAC-LC packets are copied.
    pub copy: bool,
    /// AAC bitrate when encoded (the source's when copied, if it says).
    pub bitrate: u32,
}

impl Plan {
    /// The manifest tracks of this plan, without segments yet.
    pub fn empty_tracks(&self) -> Vec<Track> {
        self.renditions
            .iter()
            .enumerate()
            .map(|(i, r)| Track {
                rendition: r.clone(),
                kind: self.kinds.get(i).copied().unwrap_or(TrackKind::Video),
                media: self.media.get(i).cloned().flatten(),
                init: None,
                segments: Vec::new(),
            })
            .collect()
    }
}

/// How a finished transcode went.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Media segments emitted per track.
    pub segments_per_track: Vec<u32>,
    /// Sum of the first track's segment durations, seconds.
    pub duration_s: f64,
    /// The source's duration as its container states it.
    pub source_duration_s: Option<f64>,
    /// Wall-clock seconds spent in [`transcode`].
    pub elapsed_s: f64,
    /// Video frames decoded (0 when every video track is a remux).
    pub frames: u64,
}

/// The libavformat demuxers a source may be opened with (`format_whitelist`): containers
/// and elementary streams that read only their own bytes. Not here, so refused: `hls`,
/// `dash`, `concat`, `image2` and the image pipes, `tty`, `subviewer`, and every other
/// demuxer that opens further URLs or files or is no movie.
pub const ALLOWED_FORMATS: &str = "matroska,webm,mov,mp4,m4a,3gp,3g2,mj2,avi,mpegts,mpeg,\
mpegvideo,m4v,h264,hevc,flv,ogg,wav,asf,aac,mp3,flac,ac3,eac3";

/// Why probing or transcoding failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("cannot open {input}: {reason}")]
    Open { input: String, reason: String },
    #[error(
        "cannot open {input}: container format not allowed (sources are read only as \
         {ALLOWED_FORMATS}; playlists such as HLS .m3u8, DASH .mpd manifests, concat lists and \
         image sequences are refused, so a source cannot make the node fetch anything)"
    )]
    FormatNotAllowed { input: String },
    #[error("{input}: no video or audio stream to transcode")]
    NoMedia { input: String },
    #[error("unsupported input: {0}")]
    Unsupported(String),
    #[error("corrupt input: {0}")]
    Corrupt(String),
    #[error("invalid ladder configuration: {0}")]
    Config(String),
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    #[error("transcoder scratch files: {0}")]
    Io(#[from] std::io::Error),
    #[error("transcode cancelled")]
    Cancelled,
    #[error("segment sink: {0}")]
    Sink(String),
}

fn ffe(op: &'static str) -> impl Fn(ff::Error) -> TranscodeError {
    move |e| TranscodeError::Ffmpeg(format!("{op}: {e}"))
}

/// Reads the input's next packet into `packet`, releasing the one it held first.
/// `av_read_frame` (ffmpeg-next's `Packet::read`) fills the packet without unreferencing
/// what it held, so reading into a reused packet leaked every earlier packet's buffer: a
/// whole movie's worth of memory per ingest (the chaos soak's ingesting node grew steadily).
fn read_packet(packet: &mut Packet, ictx: &mut format::context::Input) -> Result<(), ff::Error> {
    *packet = Packet::empty();
    packet.read(ictx)
}

fn init() -> Result<(), TranscodeError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        ff::init().map_err(|e| e.to_string())?;
        ff::log::set_level(ff::log::Level::Error);
        Ok(())
    })
    .clone()
    .map_err(TranscodeError::Ffmpeg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// References to the buffer `packet` points at (0 without one). Test-only: FFmpeg's
    /// reference count has no safe accessor.
    #[allow(unsafe_code)]
    fn refs(packet: &Packet) -> i32 {
        use ff::packet::Ref;
        // SAFETY: `packet` is a valid, initialised AVPacket; `buf` is null or a live
        // AVBufferRef it holds a reference to.
        unsafe {
            let buf = (*packet.as_ptr()).buf;
            if buf.is_null() {
                0
            } else {
                ff::ffi::av_buffer_get_ref_count(buf)
            }
        }
    }

    /// A second packet referencing `packet`'s buffer (ffmpeg-next's `clone` copies the data).
    #[allow(unsafe_code)]
    fn share(packet: &Packet) -> Packet {
        use ff::packet::{Mut, Ref};
        let mut other = Packet::empty();
        // SAFETY: both are valid AVPackets; `other` is blank, and its Drop unreferences
        // what `av_packet_ref` gives it.
        let rc = unsafe { ff::ffi::av_packet_ref(other.as_mut_ptr(), packet.as_ptr()) };
        assert_eq!(rc, 0);
        other
    }

    #[test]
    fn reading_the_next_packet_releases_the_one_held() {
        init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.mp4");
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=s=64x64:r=10",
                "-t",
                "1",
            ])
            .args(["-c:v", "mpeg4", "-y"])
            .arg(&path)
            .output()
            .expect("the ffmpeg program (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut ictx = format::input(&path).unwrap();
        let mut packet = Packet::empty();
        read_packet(&mut packet, &mut ictx).unwrap();
        let kept = share(&packet);
        assert_eq!(
            refs(&kept),
            2,
            "the demuxed packet and `kept` share one buffer"
        );
        read_packet(&mut packet, &mut ictx).unwrap();
        // The reused packet let go of the first buffer: only `kept` holds it now (with a
        // bare `Packet::read` it stayed at 2: one buffer leaked per packet).
        assert_eq!(refs(&kept), 1);
        assert!(refs(&packet) >= 1);
    }
}
