//! The transcoder: one source (a path or a URL, e.g. a growing torrent download served over
//! loopback HTTP with Range support) in, an HLS ladder of fMP4 (CMAF) or MPEG-TS segments out,
//! handed over as [`TranscodeEvent`]s while they are produced.
//!
//! It owns everything between libavformat's demuxer and finished segment bytes, using the
//! system FFmpeg libraries through `ffmpeg-next` (linked, never a spawned `ffmpeg`):
//!
//! - **Decode once.** The source video is decoded a single time; every encoded rung gets its
//!   own swscale to the rung size (display aspect kept, even dimensions, never upscaled) and
//!   its own libx264 encoder (`preset`, ABR bitrate with `maxrate = bitrate`,
//!   `bufsize = 2 × bitrate`, `keyint=infinite:scenecut=0`, so the encoder never places a
//!   keyframe by itself). Each encoded rung scales and encodes on its own thread (a chain
//!   that passes the decoded frame on from rung to rung, see `Encoders`), so rungs run in
//!   parallel with each other and with decoding.
//! - **Aligned closed GOPs.** Segment boundaries are decided here, on source timestamps: the
//!   first frame at or after every multiple of `segment_secs` (pts-based, so variable frame
//!   rate input is cut on time, not on frame counts). That frame is sent to every encoder as a
//!   forced IDR picture, so all rungs have keyframes at exactly the same pts and nowhere else.
//! - **Remux.** A rung whose height equals an 8-bit 4:2:0 H.264 source copies the source
//!   packets. Boundaries are then taken from source keyframes (the first one at or after each
//!   multiple of `segment_secs`), the encoded rungs force their IDRs onto those same pts, and the
//!   key flag of the source keyframes that are not boundaries is cleared so the segmenter
//!   ignores them. AAC-LC source audio is copied for every rung; anything else is encoded once
//!   with FFmpeg's AAC encoder (fltp, 1024-sample frames via an `abuffersink` frame size) and
//!   the same AAC packets are muxed into every rung.
//! - **Cutting.** Each rung is muxed by libavformat's `hls` muxer into a private scratch
//!   directory. For video rungs `hls_time` is tiny, so the muxer cuts at every keyframe, i.e.
//!   exactly at our boundaries; an audio-only source is cut by the muxer on `segment_secs`.
//!   A segment is picked up (and deleted) as soon as the muxer lists it in its playlist, which
//!   it does right after closing the file — so segments are emitted while the input is still
//!   being read. Durations are computed from the boundary timestamps, not from the muxer's
//!   rounded `EXTINF`, so segment `i` has the same duration on every track.
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
use reelnet_proto::{Container, Rendition};
use serde::{Deserialize, Serialize};

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
        if self.rungs.is_empty() || self.rungs.len() > reelnet_proto::manifest::MAX_TRACKS {
            return bad(format!(
                "needs 1 to {} rungs",
                reelnet_proto::manifest::MAX_TRACKS
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

/// What [`probe`] decided: one track per rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One per track, with RFC 6381 codecs, bandwidth, size and frame rate.
    pub renditions: Vec<Rendition>,
    /// The source's duration, if the container knows it.
    pub duration_s: Option<f64>,
    /// Per track: true when the track's video (or, audio-only, its audio) is copied.
    pub remux: Vec<bool>,
    /// Per track: the rung it was made from (an audio-only track has height 0). Its height
    /// may differ from the configured rung when the source is smaller than every rung.
    pub rungs: Vec<Rung>,
    /// `Some(true)` when the source audio (AAC-LC) is copied, `Some(false)` when it is
    /// encoded to AAC, `None` without audio.
    pub audio_copy: Option<bool>,
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

/// Why probing or transcoding failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("cannot open {input}: {reason}")]
    Open { input: String, reason: String },
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

// ---------------------------------------------------------------------------------------------
// Source inspection
// ---------------------------------------------------------------------------------------------

struct VideoSrc {
    index: usize,
    tb: Rational,
    width: u32,
    height: u32,
    /// Width after applying the sample aspect ratio.
    display_width: u32,
    pix: Pixel,
    codec: codec::Id,
    fps: Rational,
    params: codec::Parameters,
}

struct AudioSrc {
    index: usize,
    tb: Rational,
    aac_lc: bool,
    bit_rate: u32,
    params: codec::Parameters,
}

struct Source {
    ictx: format::context::Input,
    video: Option<VideoSrc>,
    audio: Option<AudioSrc>,
    duration_s: Option<f64>,
}

fn valid(r: Rational) -> bool {
    r.numerator() > 0 && r.denominator() > 0
}

fn open_source(input: &str) -> Result<Source, TranscodeError> {
    let ictx = format::input(&input).map_err(|e| TranscodeError::Open {
        input: input.to_owned(),
        reason: match e {
            ff::Error::InvalidData => "not a recognised media file (invalid data)".to_owned(),
            e => e.to_string(),
        },
    })?;
    let duration_s = (ictx.duration() > 0).then(|| ictx.duration() as f64 / 1_000_000.0);

    let attached = |s: &format::stream::Stream<'_>| {
        s.disposition()
            .contains(format::stream::Disposition::ATTACHED_PIC)
    };
    let video_stream = ictx
        .streams()
        .best(media::Type::Video)
        .filter(|s| !attached(s))
        .map(|s| s.index())
        .or_else(|| {
            ictx.streams()
                .find(|s| s.parameters().medium() == media::Type::Video && !attached(s))
                .map(|s| s.index())
        });
    let audio_stream = ictx.streams().best(media::Type::Audio).map(|s| s.index());

    let mut video = None;
    if let Some(index) = video_stream {
        let st = ictx
            .stream(index)
            .ok_or_else(|| TranscodeError::Ffmpeg("video stream vanished".to_owned()))?;
        let params = st.parameters();
        let codec_id = params.id();
        let dec = codec::Context::from_parameters(params.clone())
            .and_then(|c| c.decoder().video())
            .map_err(|e| {
                TranscodeError::Unsupported(format!("no decoder for video codec {codec_id:?}: {e}"))
            })?;
        let (width, height) = (dec.width(), dec.height());
        if width < 2 || height < 2 {
            return Err(TranscodeError::Unsupported(format!(
                "video stream has no usable size ({width}x{height})"
            )));
        }
        let sar = dec.aspect_ratio();
        let display_width = if valid(sar) && sar.numerator() != sar.denominator() {
            let w = i64::from(width) * i64::from(sar.numerator()) / i64::from(sar.denominator());
            u32::try_from(w.clamp(2, 16_384)).unwrap_or(width)
        } else {
            width
        };
        let fps = [st.avg_frame_rate(), st.rate()]
            .into_iter()
            .find(|r| valid(*r) && f64::from(*r) <= 1000.0)
            .unwrap_or(Rational::new(25, 1));
        let tb = st.time_base();
        if !valid(tb) {
            return Err(TranscodeError::Unsupported(
                "video stream has no time base".into(),
            ));
        }
        video = Some(VideoSrc {
            index,
            tb,
            width,
            height,
            display_width,
            pix: dec.format(),
            codec: codec_id,
            fps,
            params,
        });
    }

    let mut audio = None;
    if let Some(index) = audio_stream {
        let st = ictx
            .stream(index)
            .ok_or_else(|| TranscodeError::Ffmpeg("audio stream vanished".to_owned()))?;
        let params = st.parameters();
        let codec_id = params.id();
        let dec = codec::Context::from_parameters(params.clone())
            .and_then(|c| c.decoder().audio())
            .map_err(|e| {
                TranscodeError::Unsupported(format!("no decoder for audio codec {codec_id:?}: {e}"))
            })?;
        let aac_lc = codec_id == codec::Id::AAC
            && dec.profile() == codec::Profile::AAC(codec::profile::AAC::Low)
            && (1..=2).contains(&dec.channels());
        let tb = st.time_base();
        if !valid(tb) {
            return Err(TranscodeError::Unsupported(
                "audio stream has no time base".into(),
            ));
        }
        audio = Some(AudioSrc {
            index,
            tb,
            aac_lc,
            bit_rate: u32::try_from(dec.bit_rate()).unwrap_or(0),
            params,
        });
    }
    if video.is_none() && audio.is_none() {
        return Err(TranscodeError::NoMedia {
            input: input.to_owned(),
        });
    }
    Ok(Source {
        ictx,
        video,
        audio,
        duration_s,
    })
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self, TranscodeError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "reelnet-transcode-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

fn frame_rate_milli(fps: Rational) -> u32 {
    let v = i64::from(fps.numerator()) * 1000 / i64::from(fps.denominator().max(1));
    u32::try_from(v.clamp(0, i64::from(reelnet_proto::manifest::MAX_FRAME_RATE_MILLI))).unwrap_or(0)
}

/// Can this source's video be copied into an fMP4/TS H.264 rendition as it is?
fn remuxable(v: &VideoSrc) -> bool {
    v.codec == codec::Id::H264
        && matches!(v.pix, Pixel::YUV420P | Pixel::YUVJ420P)
        && v.display_width == v.width
}

/// Opens the libx264 encoder of one rung (also used by [`probe`] to learn the codecs string).
fn open_x264(
    v: &VideoSrc,
    width: u32,
    height: u32,
    rung: &Rung,
    preset: &str,
) -> Result<encoder::Video, TranscodeError> {
    let codec = encoder::find_by_name("libx264").ok_or_else(|| {
        TranscodeError::Unsupported("this FFmpeg has no libx264 encoder".to_owned())
    })?;
    let mut enc = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(ffe("x264 context"))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(v.tb);
    enc.set_frame_rate(Some(v.fps));
    enc.set_aspect_ratio(Rational::new(1, 1));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut opts = Dictionary::new();
    opts.set("preset", preset);
    opts.set("b", &rung.video_bitrate.to_string());
    opts.set("maxrate", &rung.video_bitrate.to_string());
    opts.set("bufsize", &(u64::from(rung.video_bitrate) * 2).to_string());
    opts.set("forced-idr", "1");
    opts.set("x264-params", "keyint=infinite:scenecut=0:open-gop=0");
    enc.open_as_with(codec, opts)
        .map_err(|e| TranscodeError::Ffmpeg(format!("opening libx264 for {}: {e}", rung.name)))
}

/// RFC 6381 `avc1.PPCCLL` of an H.264 stream, read from the `avcC` box an `mp4` muxer writes
/// for these codec parameters (safe access to the extradata).
fn avc1_codecs(
    params: codec::Parameters,
    tb: Rational,
    scratch: &Path,
) -> Result<String, TranscodeError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = scratch.join(format!("avcc-{}.mp4", N.fetch_add(1, Ordering::Relaxed)));
    {
        let mut octx = format::output_as(&path, "mp4").map_err(ffe("avcC probe"))?;
        {
            let mut ost = octx
                .add_stream(encoder::find(codec::Id::None))
                .map_err(ffe("avcC probe stream"))?;
            ost.set_parameters(params);
            ost.set_time_base(tb);
        }
        let mut opts = Dictionary::new();
        opts.set("movflags", "empty_moov+default_base_moof+frag_keyframe");
        octx.write_header_with(opts)
            .map_err(ffe("avcC probe header"))?;
        octx.write_trailer().map_err(ffe("avcC probe trailer"))?;
    }
    let bytes = std::fs::read(&path)?;
    let _ = std::fs::remove_file(&path);
    let at = bytes
        .windows(4)
        .position(|w| w == b"avcC")
        .ok_or_else(|| TranscodeError::Unsupported("H.264 stream without avcC".into()))?;
    match bytes.get(at + 5..at + 8) {
        Some([p, c, l]) => Ok(format!("avc1.{p:02x}{c:02x}{l:02x}")),
        _ => Err(TranscodeError::Unsupported("truncated avcC".into())),
    }
}

/// Probes `input` and decides the ladder: which rungs, their sizes, codecs, and which are
/// remuxed. Blocking.
pub fn probe(input: &str, config: &LadderConfig) -> Result<Plan, TranscodeError> {
    init()?;
    config.validate()?;
    let src = open_source(input)?;
    let scratch = Scratch::new()?;
    plan_for(&src, config, &scratch.0)
}

fn plan_for(src: &Source, config: &LadderConfig, scratch: &Path) -> Result<Plan, TranscodeError> {
    let audio_copy = src.audio.as_ref().map(|a| a.aac_lc);
    let top_audio = config
        .rungs
        .iter()
        .map(|r| r.audio_bitrate)
        .max()
        .unwrap_or(128_000);
    let audio_rate = |r: &Rung| match &src.audio {
        None => 0,
        Some(a) if a.aac_lc && a.bit_rate > 0 => a.bit_rate,
        Some(_) => r.audio_bitrate,
    };
    let Some(v) = &src.video else {
        let rung = Rung {
            name: "audio".to_owned(),
            height: 0,
            video_bitrate: 0,
            audio_bitrate: top_audio,
        };
        let bandwidth = audio_rate(&rung).max(1) / 10 * 11;
        return Ok(Plan {
            renditions: vec![Rendition {
                name: rung.name.clone(),
                width: 0,
                height: 0,
                bandwidth,
                codecs: "mp4a.40.2".to_owned(),
                frame_rate_milli: 0,
            }],
            duration_s: src.duration_s,
            remux: vec![audio_copy == Some(true)],
            rungs: vec![rung],
            audio_copy,
        });
    };

    let mut rungs: Vec<Rung> = Vec::new();
    for r in &config.rungs {
        let h = even(r.height);
        if r.height <= v.height && !rungs.iter().any(|x| x.height == h) {
            rungs.push(Rung {
                height: h,
                ..r.clone()
            });
        }
    }
    if rungs.is_empty() {
        // The source is smaller than every rung: one rung at the source size.
        let smallest = config
            .rungs
            .iter()
            .min_by_key(|r| r.height)
            .ok_or_else(|| TranscodeError::Config("no rungs".into()))?;
        let h = even(v.height);
        let scale = f64::from(h) / f64::from(smallest.height.max(1));
        let bitrate = (f64::from(smallest.video_bitrate) * scale * scale).max(150_000.0);
        rungs.push(Rung {
            name: format!("{h}p"),
            height: h,
            video_bitrate: bitrate as u32,
            audio_bitrate: smallest.audio_bitrate,
        });
    }

    let can_remux = remuxable(v);
    let mut renditions = Vec::new();
    let mut remux = Vec::new();
    for r in &rungs {
        let audio_codec = if src.audio.is_some() {
            ",mp4a.40.2"
        } else {
            ""
        };
        let copy = can_remux && r.height == v.height;
        let remux_codecs = if copy {
            avc1_codecs(v.params.clone(), v.tb, scratch).ok()
        } else {
            None
        };
        let is_remux = remux_codecs.is_some();
        let (width, codecs, video_bw) = match remux_codecs {
            Some(c) => {
                // Unknown peak of the source: assume the rung's bitrate unless the stream says.
                let bw = u32::try_from(v.params.bit_rate())
                    .ok()
                    .filter(|b| *b > 0)
                    .map_or(r.video_bitrate, |b| b.saturating_add(b / 2));
                (v.width, c, bw)
            }
            None => {
                let w = even(scaled_width(v, r.height));
                let enc = open_x264(v, w, r.height, r, &config.preset)?;
                (
                    w,
                    avc1_codecs((&enc).into(), v.tb, scratch)?,
                    r.video_bitrate,
                )
            }
        };
        remux.push(is_remux);
        let bandwidth = video_bw
            .saturating_add(audio_rate(r))
            .saturating_add(video_bw / 10);
        renditions.push(Rendition {
            name: r.name.clone(),
            width,
            height: r.height,
            bandwidth,
            codecs: format!("{codecs}{audio_codec}"),
            frame_rate_milli: frame_rate_milli(v.fps),
        });
    }
    Ok(Plan {
        renditions,
        duration_s: src.duration_s,
        remux,
        rungs,
        audio_copy,
    })
}

/// The rung width for `height`: the display aspect kept, rounded to the nearest even number
/// (what `scale=-2:height` does).
fn scaled_width(v: &VideoSrc, height: u32) -> u32 {
    let half = (f64::from(v.display_width) * f64::from(height) / f64::from(v.height) / 2.0).round();
    ((half as u32) * 2).clamp(2, reelnet_proto::manifest::MAX_DIMENSION)
}

// ---------------------------------------------------------------------------------------------
// Transcoding
// ---------------------------------------------------------------------------------------------

/// Timestamps in ticks of `tb` → milliseconds, rounded to nearest.
fn to_ms(ts: i64, tb: Rational) -> i64 {
    let num = i128::from(ts) * i128::from(tb.numerator()) * 1000;
    let den = i128::from(tb.denominator().max(1));
    let q = if num >= 0 {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    };
    i64::try_from(q).unwrap_or(0)
}

fn secs(ts: i64, tb: Rational) -> f64 {
    ts as f64 * f64::from(tb)
}

/// Is `delta` ticks of `tb` at least `k × seg` seconds?
fn reached(delta: i64, tb: Rational, k: i64, seg: u32) -> bool {
    i128::from(delta) * i128::from(tb.numerator())
        >= i128::from(k) * i128::from(seg) * i128::from(tb.denominator())
}

/// The smallest k with `k × seg` seconds strictly after `delta` ticks.
fn next_k(delta: i64, tb: Rational, seg: u32) -> i64 {
    let q = i128::from(delta.max(0)) * i128::from(tb.numerator())
        / (i128::from(seg) * i128::from(tb.denominator().max(1)));
    i64::try_from(q).unwrap_or(i64::MAX - 1) + 1
}

/// Segment boundaries shared by every track: `cuts[0]` is the start, `cuts[i]` the first
/// timestamp of segment `i`, `end` the end of the last frame (all in ticks of `tb`).
struct Timeline {
    tb: Rational,
    cuts: Vec<i64>,
    end: i64,
    next_k: i64,
}

impl Timeline {
    fn new(tb: Rational) -> Self {
        Self {
            tb,
            cuts: Vec::new(),
            end: i64::MIN,
            next_k: 1,
        }
    }

    /// Records a frame or packet at `pts` that may start a segment (`candidate`); returns
    /// whether it does.
    fn offer(&mut self, pts: i64, candidate: bool, seg: u32) -> bool {
        let Some(&start) = self.cuts.first() else {
            if candidate {
                self.cuts.push(pts);
            }
            return candidate;
        };
        let delta = pts - start;
        if candidate
            && pts > *self.cuts.last().unwrap_or(&start)
            && reached(delta, self.tb, self.next_k, seg)
        {
            self.cuts.push(pts);
            self.next_k = next_k(delta, self.tb, seg);
            return true;
        }
        false
    }

    fn extend(&mut self, end: i64) {
        self.end = self.end.max(end);
    }

    /// Duration of segment `i` in ms, once its end is known (`last` for the final segment).
    fn duration_ms(&self, i: usize, last: bool) -> Option<u32> {
        let start = *self.cuts.get(i)?;
        let end = match self.cuts.get(i + 1) {
            Some(e) => *e,
            None if last => self.end.max(start),
            None => return None,
        };
        let ms = to_ms(end, self.tb) - to_ms(start, self.tb);
        Some(u32::try_from(ms.max(1)).unwrap_or(u32::MAX))
    }
}

/// What the decode loop hands to a rung's encoder thread.
enum ToEncoder {
    Frame {
        frame: frame::Video,
        pts: i64,
        /// Frame duration in source ticks (becomes the packet's duration).
        duration: i64,
        /// Force an IDR picture here (a segment boundary).
        force: bool,
    },
    /// End of input: flush the encoder, then stop.
    Eof,
}

/// What a rung's encoder thread hands back: packets in the source time base, `None` once the
/// encoder is flushed, or why it failed.
type FromEncoder = Result<Option<Packet>, TranscodeError>;

/// Decoded frames queued per rung before the thread in front of it waits.
const ENCODER_QUEUE: usize = 4;

/// The encoded rungs' threads. Each rung's swscale + libx264 run on a dedicated thread, so the
/// rungs scale and encode in parallel with each other and with decoding (as the `ffmpeg`
/// CLI's encoder threads do). The threads form a chain, smallest rung first: a thread scales
/// the decoded frame for its rung, passes the same frame on to the next (bigger) rung, then
/// encodes; so a frame is never copied, and the top rung can take it as it is when it already
/// has the rung's size and format. Packets come back per rung on its own channel
/// ([`EncodedVideo`]) and are muxed by the decode loop, which alone owns the segmenters and
/// the timeline.
struct Encoders {
    /// The first thread of the chain.
    head: Option<mpsc::SyncSender<ToEncoder>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Tells the threads to stop without finishing their queues.
    stop: Arc<AtomicBool>,
}

impl Encoders {
    fn new() -> Self {
        Self {
            head: None,
            threads: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts the thread of one rung; it becomes the head of the chain, so add the rungs
    /// biggest first.
    fn spawn(
        &mut self,
        name: &str,
        encoder: encoder::Video,
        width: u32,
        height: u32,
    ) -> Result<EncodedVideo, TranscodeError> {
        let (to, frames) = mpsc::sync_channel(ENCODER_QUEUE);
        let (packets, from) = mpsc::channel();
        let rung = RungThread {
            encoder,
            width,
            height,
            frames,
            next: self.head.take(),
            packets,
            stop: Arc::clone(&self.stop),
        };
        let thread = std::thread::Builder::new()
            .name(format!("x264-{name}"))
            .spawn(move || rung.run())?;
        self.threads.push(thread);
        self.head = Some(to);
        Ok(EncodedVideo {
            from,
            flushed: false,
        })
    }

    /// Hands a message to the chain (waits while the first queue is full); false when the
    /// chain has stopped (a thread failed: it says why on its packet channel).
    fn send(&self, msg: ToEncoder) -> bool {
        self.head.as_ref().is_some_and(|to| to.send(msg).is_ok())
    }
}

impl Drop for Encoders {
    fn drop(&mut self) {
        // Closing the chain's input stops every thread after its current frame.
        self.stop.store(true, Ordering::Relaxed);
        self.head = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One encoded rung, as the decode loop sees it.
struct EncodedVideo {
    /// Encoded packets from the rung's thread.
    from: mpsc::Receiver<FromEncoder>,
    /// The flushed encoder's `None` has been received.
    flushed: bool,
}

/// A rung's encoder thread.
struct RungThread {
    encoder: encoder::Video,
    width: u32,
    height: u32,
    frames: mpsc::Receiver<ToEncoder>,
    /// The next rung in the chain.
    next: Option<mpsc::SyncSender<ToEncoder>>,
    packets: mpsc::Sender<FromEncoder>,
    stop: Arc<AtomicBool>,
}

impl RungThread {
    fn run(mut self) {
        if let Err(e) = self.encode() {
            let _ = self.packets.send(Err(e));
        }
    }

    /// Passes a message on to the next rung. A rung that has stopped reports why itself.
    fn forward(&mut self, msg: ToEncoder) {
        if let Some(next) = &self.next {
            if next.send(msg).is_err() {
                self.next = None;
            }
        }
    }

    /// Sends the encoder's ready packets back; false once the job is gone.
    fn drain(&mut self, durations: &mut HashMap<i64, i64>) -> bool {
        loop {
            let mut p = Packet::empty();
            if self.encoder.receive_packet(&mut p).is_err() {
                return true;
            }
            let dur = p.pts().and_then(|pts| durations.remove(&pts)).unwrap_or(0);
            p.set_duration(dur);
            if self.packets.send(Ok(Some(p))).is_err() {
                return false;
            }
        }
    }

    fn encode(&mut self) -> Result<(), TranscodeError> {
        let mut scaler: Option<scaling::Context> = None;
        // Frame durations by pts, until the encoder gives the packet back.
        let mut durations: HashMap<i64, i64> = HashMap::new();
        while let Ok(msg) = self.frames.recv() {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let (decoded, pts, duration, force) = match msg {
                ToEncoder::Frame {
                    frame,
                    pts,
                    duration,
                    force,
                } => (frame, pts, duration, force),
                ToEncoder::Eof => {
                    self.forward(ToEncoder::Eof);
                    self.encoder.send_eof().map_err(ffe("flushing x264"))?;
                    self.drain(&mut durations);
                    let _ = self.packets.send(Ok(None));
                    return Ok(());
                }
            };
            let as_is = self.next.is_none()
                && decoded.format() == Pixel::YUV420P
                && decoded.width() == self.width
                && decoded.height() == self.height;
            let mut frame = if as_is {
                decoded
            } else {
                let stale = scaler.as_ref().is_some_and(|s| {
                    let i = s.input();
                    i.format != decoded.format()
                        || i.width != decoded.width()
                        || i.height != decoded.height()
                });
                if stale || scaler.is_none() {
                    scaler = Some(
                        scaling::Context::get(
                            decoded.format(),
                            decoded.width(),
                            decoded.height(),
                            Pixel::YUV420P,
                            self.width,
                            self.height,
                            scaling::Flags::BICUBIC,
                        )
                        .map_err(ffe("swscale"))?,
                    );
                }
                let mut scaled = frame::Video::empty();
                if let Some(s) = scaler.as_mut() {
                    s.run(&decoded, &mut scaled).map_err(ffe("scaling"))?;
                }
                self.forward(ToEncoder::Frame {
                    frame: decoded,
                    pts,
                    duration,
                    force,
                });
                scaled
            };
            frame.set_pts(Some(pts));
            frame.set_kind(if force {
                picture::Type::I
            } else {
                picture::Type::None
            });
            durations.insert(pts, duration);
            self.encoder
                .send_frame(&frame)
                .map_err(ffe("encoding video"))?;
            drop(frame);
            if !self.drain(&mut durations) {
                return Ok(());
            }
        }
        Ok(())
    }
}

struct TrackOut {
    octx: format::context::Output,
    dir: PathBuf,
    playlist: PathBuf,
    /// Output stream index and time base of video / audio.
    video: Option<(usize, Rational)>,
    audio: Option<(usize, Rational)>,
    enc: Option<EncodedVideo>,
    remux: bool,
    /// Video keyframes handed to the muxer.
    keyframes: usize,
    emitted: u32,
    init_sent: bool,
    /// Audio-only: boundaries learnt from the muxer, in the audio packet time base.
    audio_cuts: Option<Timeline>,
}

enum AudioPipe {
    Copy {
        index: usize,
        tb: Rational,
    },
    Encode {
        index: usize,
        /// Time base of the decoded frames' timestamps (the input stream's).
        in_tb: Rational,
        decoder: ff::decoder::Audio,
        graph: Option<(filter::Graph, Rational)>,
        encoder: encoder::Audio,
        rate: u32,
        next_pts: Option<i64>,
    },
}

struct Job<'a> {
    config: &'a LadderConfig,
    fmp4: bool,
    tracks: Vec<TrackOut>,
    /// Video: stream index, time base, decoder (when any rung is encoded).
    video_index: Option<usize>,
    video_tb: Rational,
    decoder: Option<ff::decoder::Video>,
    /// The encoded rungs' threads (dropped after `tracks`: closed packet channels stop them).
    encoders: Encoders,
    remux_mode: bool,
    timeline: Timeline,
    /// Boundaries decided on source keyframes, waiting for their decoded frame.
    forced: VecDeque<i64>,
    last_frame_pts: Option<i64>,
    default_frame_dur: i64,
    frames: u64,
    decode_errors: u64,
    audio: Option<AudioPipe>,
    /// Time base of the audio packets handed to the muxers.
    audio_tb: Rational,
    first_pts_s: Option<f64>,
    last_progress_s: f64,
    duration_s: Option<f64>,
}

/// Transcodes `input` as `plan` says. Blocking: run it on a blocking thread. Calls `sink`
/// for every event, in order; stops early with `Err(Cancelled)` when `cancel` is set; an
/// `Err` from `sink` aborts.
pub fn transcode(
    input: &str,
    config: &LadderConfig,
    plan: &Plan,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
) -> Result<Summary, TranscodeError> {
    init()?;
    config.validate()?;
    let started = Instant::now();
    let mut src = open_source(input)?;
    let scratch = Scratch::new()?;
    let mut job = Job::new(&src, config, plan, &scratch.0)?;
    job.run(&mut src.ictx, cancel, sink)?;
    let first = job.tracks.first();
    let duration_s = match first.and_then(|t| t.audio_cuts.as_ref()) {
        Some(tl) => (0..first.map_or(0, |t| t.emitted) as usize)
            .filter_map(|i| tl.duration_ms(i, true))
            .map(f64::from)
            .sum::<f64>(),
        None => (0..first.map_or(0, |t| t.emitted) as usize)
            .filter_map(|i| job.timeline.duration_ms(i, true))
            .map(f64::from)
            .sum::<f64>(),
    } / 1000.0;
    if let (Some(stated), Some(_)) = (src.duration_s, &src.video) {
        // A video that ends well before its container says it should is truncated. (Audio-only
        // files are let through: MP3 durations without a header are estimates.)
        let slack = 1.0 + stated * 0.02;
        if duration_s + slack < stated {
            return Err(TranscodeError::Corrupt(format!(
                "the input ends at {duration_s:.1} s but says it lasts {stated:.1} s (truncated?)"
            )));
        }
    }
    Ok(Summary {
        segments_per_track: job.tracks.iter().map(|t| t.emitted).collect(),
        duration_s,
        source_duration_s: src.duration_s,
        elapsed_s: started.elapsed().as_secs_f64(),
        frames: job.frames,
    })
}

fn hls_options(config: &LadderConfig, dir: &Path, video: bool) -> Dictionary<'static> {
    let mut d = Dictionary::new();
    let ext = config.container.segment_extension();
    let seg_time = if video {
        // Cut at every keyframe: keyframes only exist at our boundaries.
        "0.05".to_owned()
    } else {
        config.segment_secs.to_string()
    };
    d.set("hls_time", &seg_time);
    d.set(
        "hls_segment_type",
        match config.container {
            Container::Fmp4 => "fmp4",
            Container::MpegTs => "mpegts",
        },
    );
    d.set("hls_list_size", "0");
    d.set("hls_playlist_type", "event");
    d.set("hls_flags", "independent_segments");
    d.set("hls_fmp4_init_filename", "init.mp4");
    d.set(
        "hls_segment_filename",
        &dir.join(format!("seg_%06d.{ext}")).to_string_lossy(),
    );
    d
}

impl<'a> Job<'a> {
    fn new(
        src: &Source,
        config: &'a LadderConfig,
        plan: &Plan,
        scratch: &Path,
    ) -> Result<Self, TranscodeError> {
        let n = plan.renditions.len();
        if n == 0 || plan.remux.len() != n || plan.rungs.len() != n {
            return Err(TranscodeError::Config(
                "plan has inconsistent tracks".into(),
            ));
        }
        let audio_only = plan.renditions.iter().all(Rendition::is_audio_only);
        if !audio_only && src.video.is_none() {
            return Err(TranscodeError::Unsupported(
                "the plan has video renditions but the input has no video".into(),
            ));
        }

        // Audio: copy or encode once.
        let mut audio_tb = Rational::new(1, 48_000);
        let audio = match &src.audio {
            None => None,
            Some(a) if a.aac_lc => {
                audio_tb = a.tb;
                Some(AudioPipe::Copy {
                    index: a.index,
                    tb: a.tb,
                })
            }
            Some(a) => {
                let decoder = codec::Context::from_parameters(a.params.clone())
                    .and_then(|c| c.decoder().audio())
                    .map_err(ffe("audio decoder"))?;
                let channels = if decoder.channels() >= 2 { 2 } else { 1 };
                let layout = if channels == 2 {
                    ChannelLayout::STEREO
                } else {
                    ChannelLayout::MONO
                };
                let rate = match decoder.rate() {
                    r @ (8000 | 11025 | 12000 | 16000 | 22050 | 24000 | 32000 | 44100 | 48000
                    | 88200 | 96000) => r,
                    _ => 48_000,
                };
                let codec = encoder::find(codec::Id::AAC)
                    .ok_or_else(|| TranscodeError::Unsupported("no AAC encoder".into()))?;
                let mut enc = codec::Context::new_with_codec(codec)
                    .encoder()
                    .audio()
                    .map_err(ffe("aac context"))?;
                enc.set_rate(rate as i32);
                enc.set_channel_layout(layout);
                enc.set_channels(channels);
                enc.set_format(format::Sample::F32(format::sample::Type::Planar));
                let bitrate = plan
                    .rungs
                    .iter()
                    .map(|r| r.audio_bitrate)
                    .max()
                    .unwrap_or(128_000);
                enc.set_bit_rate(bitrate as usize);
                enc.set_time_base(Rational::new(1, rate as i32));
                enc.set_flags(codec::Flags::GLOBAL_HEADER);
                let enc = enc.open_as(codec).map_err(ffe("opening the AAC encoder"))?;
                audio_tb = Rational::new(1, rate as i32);
                Some(AudioPipe::Encode {
                    index: a.index,
                    in_tb: a.tb,
                    decoder,
                    graph: None,
                    encoder: enc,
                    rate,
                    next_pts: None,
                })
            }
        };
        let aac_params: Option<codec::Parameters> = match &audio {
            Some(AudioPipe::Encode { encoder, .. }) => Some(encoder.into()),
            Some(AudioPipe::Copy { .. }) => src.audio.as_ref().map(|a| a.params.clone()),
            None => None,
        };

        let mut tracks = Vec::with_capacity(n);
        let mut encoders = Encoders::new();
        let mut any_encoded = false;
        for (i, rendition) in plan.renditions.iter().enumerate() {
            let dir = scratch.join(format!("track{i}"));
            std::fs::create_dir_all(&dir)?;
            let playlist = dir.join("index.m3u8");
            let mut octx = format::output_as(&playlist, "hls").map_err(ffe("hls muxer"))?;
            let mut enc = None;
            let mut video_idx = None;
            let remux = plan.remux.get(i).copied().unwrap_or(false);
            if !rendition.is_audio_only() {
                let v = src
                    .video
                    .as_ref()
                    .ok_or_else(|| TranscodeError::Unsupported("the input has no video".into()))?;
                let mut ost = octx
                    .add_stream(encoder::find(codec::Id::None))
                    .map_err(ffe("hls video stream"))?;
                if remux {
                    ost.set_parameters(v.params.clone());
                } else {
                    let rung = plan
                        .rungs
                        .get(i)
                        .ok_or_else(|| TranscodeError::Config("plan has no rung".into()))?;
                    let e = open_x264(v, rendition.width, rendition.height, rung, &config.preset)?;
                    ost.set_parameters(&e);
                    enc = Some(encoders.spawn(
                        &rendition.name,
                        e,
                        rendition.width,
                        rendition.height,
                    )?);
                    any_encoded = true;
                }
                ost.set_time_base(v.tb);
                video_idx = Some(ost.index());
            }
            let mut audio_idx = None;
            if let Some(p) = &aac_params {
                let mut ost = octx
                    .add_stream(encoder::find(codec::Id::None))
                    .map_err(ffe("hls audio stream"))?;
                ost.set_parameters(p.clone());
                ost.set_time_base(audio_tb);
                audio_idx = Some(ost.index());
            }
            octx.write_header_with(hls_options(config, &dir, video_idx.is_some()))
                .map_err(|e| {
                    TranscodeError::Ffmpeg(format!(
                        "starting the {} segmenter{}: {e}",
                        rendition.name,
                        if remux { " (stream copy)" } else { "" }
                    ))
                })?;
            let tb_of =
                |idx: Option<usize>| idx.and_then(|i| octx.stream(i).map(|s| (i, s.time_base())));
            let (video, audio_o) = (tb_of(video_idx), tb_of(audio_idx));
            tracks.push(TrackOut {
                dir,
                playlist,
                video,
                audio: audio_o,
                enc,
                remux,
                keyframes: 0,
                emitted: 0,
                init_sent: false,
                audio_cuts: video.is_none().then(|| Timeline::new(audio_tb)),
                octx,
            });
        }

        let (video_index, video_tb, decoder, default_frame_dur) = match &src.video {
            Some(v) if !audio_only => {
                let decoder = if any_encoded {
                    let mut ctx = codec::Context::from_parameters(v.params.clone())
                        .map_err(ffe("video decoder"))?;
                    ctx.set_threading(codec::threading::Config {
                        kind: codec::threading::Type::Frame,
                        ..Default::default()
                    });
                    Some(
                        ctx.decoder()
                            .video()
                            .map_err(ffe("opening the video decoder"))?,
                    )
                } else {
                    None
                };
                let dur = (f64::from(v.fps.invert()) / f64::from(v.tb))
                    .round()
                    .max(1.0) as i64;
                (Some(v.index), v.tb, decoder, dur)
            }
            _ => (None, Rational::new(1, 1000), None, 1),
        };
        let remux_mode = tracks.iter().any(|t| t.remux && t.video.is_some());
        Ok(Self {
            config,
            fmp4: config.container == Container::Fmp4,
            tracks,
            video_index,
            video_tb,
            decoder,
            encoders,
            remux_mode,
            timeline: Timeline::new(video_tb),
            forced: VecDeque::new(),
            last_frame_pts: None,
            default_frame_dur,
            frames: 0,
            decode_errors: 0,
            audio,
            audio_tb,
            first_pts_s: None,
            last_progress_s: f64::NEG_INFINITY,
            duration_s: src.duration_s,
        })
    }

    fn run(
        &mut self,
        ictx: &mut format::context::Input,
        cancel: &AtomicBool,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let audio_index = match &self.audio {
            Some(AudioPipe::Copy { index, .. } | AudioPipe::Encode { index, .. }) => Some(*index),
            None => None,
        };
        let mut packet = Packet::empty();
        let mut read_errors = 0u32;
        sink(TranscodeEvent::Progress {
            position_s: 0.0,
            duration_s: self.duration_s,
        })?;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(TranscodeError::Cancelled);
            }
            match packet.read(ictx) {
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                Err(ff::Error::InvalidData) => {
                    read_errors += 1;
                    if read_errors > 100 {
                        return Err(TranscodeError::Corrupt(
                            "too many unreadable packets".to_owned(),
                        ));
                    }
                    continue;
                }
                Err(e) => return Err(TranscodeError::Ffmpeg(format!("reading the input: {e}"))),
            }
            let si = packet.stream();
            let tb = if Some(si) == self.video_index {
                self.video_tb
            } else if Some(si) == audio_index {
                match &self.audio {
                    Some(AudioPipe::Copy { tb, .. }) => *tb,
                    _ => ictx.stream(si).map_or(self.audio_tb, |s| s.time_base()),
                }
            } else {
                continue;
            };
            if let Some(pts) = packet.pts().or(packet.dts()) {
                let s = secs(pts, tb);
                let first = *self.first_pts_s.get_or_insert(s);
                let position = (s - first).max(0.0);
                if position - self.last_progress_s >= 0.5 {
                    self.last_progress_s = position;
                    sink(TranscodeEvent::Progress {
                        position_s: position,
                        duration_s: self.duration_s,
                    })?;
                }
            }
            if Some(si) == self.video_index {
                self.video_packet(&packet, sink)?;
            } else {
                self.audio_packet(&packet, sink)?;
            }
        }
        self.finish(sink)
    }

    fn video_packet(
        &mut self,
        packet: &Packet,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        if self.remux_mode {
            let Some(pts) = packet.pts() else {
                return Err(TranscodeError::Unsupported(
                    "the H.264 source has packets without timestamps; cannot remux it".into(),
                ));
            };
            if self.timeline.cuts.is_empty() && !packet.is_key() {
                return Ok(()); // Start at the first keyframe.
            }
            self.timeline.extend(pts + packet.duration().max(0));
            let boundary = self
                .timeline
                .offer(pts, packet.is_key(), self.config.segment_secs);
            if boundary && self.decoder.is_some() {
                self.forced.push_back(pts);
            }
            for t in 0..self.tracks.len() {
                let track = &mut self.tracks[t];
                let Some((idx, otb)) = track.video.filter(|_| track.remux) else {
                    continue;
                };
                let mut p = packet.clone();
                if !boundary && p.is_key() {
                    p.set_flags(p.flags() - codec::packet::Flags::KEY);
                }
                p.set_stream(idx);
                p.set_position(-1);
                p.rescale_ts(self.video_tb, otb);
                shift(&mut p, otb);
                p.write_interleaved(&mut track.octx)
                    .map_err(ffe("muxing a copied video packet"))?;
                if boundary {
                    track.keyframes += 1;
                }
                poll_track(track, t, &self.timeline, self.fmp4, false, sink)?;
            }
        } else if let Some(pts) = packet.pts() {
            self.timeline.extend(pts + packet.duration().max(0));
        }
        if let Some(dec) = self.decoder.as_mut() {
            match dec.send_packet(packet) {
                Ok(()) => {}
                Err(ff::Error::InvalidData) => {
                    self.decode_errors += 1;
                    if self.frames == 0 && self.decode_errors > 50 {
                        return Err(TranscodeError::Corrupt(
                            "the video stream does not decode".to_owned(),
                        ));
                    }
                }
                Err(e) => return Err(TranscodeError::Ffmpeg(format!("decoding video: {e}"))),
            }
            self.drain_decoder(sink)?;
        }
        Ok(())
    }

    fn drain_decoder(
        &mut self,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        loop {
            let Some(dec) = self.decoder.as_mut() else {
                return Ok(());
            };
            // A fresh frame each time: it moves on to the encoder threads.
            let mut decoded = frame::Video::empty();
            match dec.receive_frame(&mut decoded) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => return Ok(()),
                Err(ff::Error::InvalidData) => {
                    self.decode_errors += 1;
                    continue;
                }
                Err(e) => return Err(TranscodeError::Ffmpeg(format!("decoding video: {e}"))),
            }
            self.video_frame(decoded, sink)?;
        }
    }

    fn video_frame(
        &mut self,
        decoded: frame::Video,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let pts = match (decoded.timestamp(), self.last_frame_pts) {
            (Some(p), _) => p,
            (None, Some(last)) => last + self.default_frame_dur,
            (None, None) => 0,
        };
        if self.last_frame_pts.is_some_and(|last| pts <= last) {
            return Ok(()); // Duplicate or out-of-order timestamp: drop the frame.
        }
        let force = if self.remux_mode {
            if self.timeline.cuts.first().is_none_or(|s| pts < *s) {
                return Ok(()); // Before the first copied keyframe.
            }
            let mut force = false;
            while self.forced.front().is_some_and(|f| *f <= pts) {
                if self.forced.front() != Some(&pts) {
                    tracing::warn!(
                        pts,
                        "a boundary keyframe did not decode; forcing the next frame"
                    );
                }
                self.forced.pop_front();
                force = true;
            }
            force
        } else {
            self.timeline.offer(pts, true, self.config.segment_secs)
        };
        self.last_frame_pts = Some(pts);
        self.frames += 1;
        let dur = match decoded.packet().duration {
            d if d > 0 => d,
            _ => self.default_frame_dur,
        };
        self.timeline.extend(pts + dur);

        if !self.encoders.send(ToEncoder::Frame {
            frame: decoded,
            pts,
            duration: dur,
            force,
        }) {
            return Err(self.encoder_failure());
        }
        for t in 0..self.tracks.len() {
            let track = &mut self.tracks[t];
            drain_video_encoder(
                track,
                t,
                self.video_tb,
                &self.timeline,
                self.fmp4,
                false,
                sink,
            )?;
        }
        Ok(())
    }

    /// Why the encoder chain stopped, as one of its threads reported it.
    fn encoder_failure(&self) -> TranscodeError {
        self.tracks
            .iter()
            .filter_map(|t| t.enc.as_ref())
            .find_map(|e| e.from.try_iter().find_map(Result::err))
            .unwrap_or_else(|| TranscodeError::Ffmpeg("an encoder thread stopped".into()))
    }

    fn audio_packet(
        &mut self,
        packet: &Packet,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        match &mut self.audio {
            None => Ok(()),
            Some(AudioPipe::Copy { .. }) => {
                if packet.pts().is_none() {
                    return Ok(());
                }
                self.mux_audio(packet, sink)
            }
            Some(AudioPipe::Encode { decoder, .. }) => {
                match decoder.send_packet(packet) {
                    Ok(()) => {}
                    Err(ff::Error::InvalidData) => {
                        self.decode_errors += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(TranscodeError::Ffmpeg(format!("decoding audio: {e}"))),
                }
                self.drain_audio(false, sink)
            }
        }
    }

    /// Pulls decoded audio through the resampler into the AAC encoder and muxes its packets.
    fn drain_audio(
        &mut self,
        eof: bool,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let mut out_packets = Vec::new();
        if let Some(AudioPipe::Encode {
            in_tb,
            decoder,
            graph,
            encoder,
            rate,
            next_pts,
            ..
        }) = &mut self.audio
        {
            let mut decoded = frame::Audio::empty();
            loop {
                match decoder.receive_frame(&mut decoded) {
                    Ok(()) => {}
                    Err(ff::Error::InvalidData) => continue,
                    Err(_) => break,
                }
                if graph.is_none() {
                    *graph = Some(audio_graph(&decoded, *in_tb, encoder, *rate)?);
                }
                if let Some((g, _)) = graph.as_mut() {
                    let ts = decoded.timestamp();
                    decoded.set_pts(ts);
                    let mut src = g
                        .get("in")
                        .ok_or_else(|| TranscodeError::Ffmpeg("abuffer missing".into()))?;
                    src.source().add(&decoded).map_err(ffe("audio filter"))?;
                }
            }
            if let Some((g, sink_tb)) = graph.as_mut() {
                if eof {
                    if let Some(mut src) = g.get("in") {
                        let _ = src.source().flush();
                    }
                }
                let out_tb = Rational::new(1, *rate as i32);
                let mut filtered = frame::Audio::empty();
                while let Some(mut sink_ctx) = g.get("out") {
                    if sink_ctx.sink().frame(&mut filtered).is_err() {
                        break;
                    }
                    let own = next_pts.unwrap_or(0);
                    let pts = filtered
                        .pts()
                        .map(|p| p.rescale_to(*sink_tb, out_tb))
                        .filter(|p| next_pts.is_none() || *p >= own)
                        .unwrap_or(own);
                    *next_pts = Some(pts + filtered.samples() as i64);
                    filtered.set_pts(Some(pts));
                    encoder
                        .send_frame(&filtered)
                        .map_err(ffe("encoding audio"))?;
                    receive_all(encoder, &mut out_packets);
                }
            }
            if eof {
                let _ = encoder.send_eof();
                receive_all(encoder, &mut out_packets);
            }
        }
        for p in out_packets {
            self.mux_audio(&p, sink)?;
        }
        Ok(())
    }

    /// Writes one AAC packet (time base `self.audio_tb`) into every track.
    fn mux_audio(
        &mut self,
        packet: &Packet,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let Some(pts) = packet.pts() else {
            return Ok(());
        };
        for t in 0..self.tracks.len() {
            let track = &mut self.tracks[t];
            let Some((idx, otb)) = track.audio else {
                continue;
            };
            let mut p = packet.clone();
            p.set_stream(idx);
            p.set_position(-1);
            p.rescale_ts(self.audio_tb, otb);
            shift(&mut p, otb);
            p.write_interleaved(&mut track.octx)
                .map_err(ffe("muxing audio"))?;
            if let Some(mut tl) = track.audio_cuts.take() {
                // Audio-only: the muxer cuts on time; learn where from its playlist.
                let r = audio_only_step(
                    track,
                    t,
                    &mut tl,
                    (pts, packet.duration()),
                    self.config.segment_secs,
                    self.fmp4,
                    sink,
                );
                track.audio_cuts = Some(tl);
                r?;
            } else {
                poll_track(track, t, &self.timeline, self.fmp4, false, sink)?;
            }
        }
        Ok(())
    }

    fn finish(
        &mut self,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        if self.decoder.is_some() {
            if let Some(dec) = self.decoder.as_mut() {
                let _ = dec.send_eof();
            }
            self.drain_decoder(sink)?;
            if self.frames == 0 {
                return Err(TranscodeError::Corrupt(
                    "no video frame could be decoded".to_owned(),
                ));
            }
            if !self.encoders.send(ToEncoder::Eof) {
                return Err(self.encoder_failure());
            }
            // The encoders flush in parallel; collect them in track order.
            for t in 0..self.tracks.len() {
                let track = &mut self.tracks[t];
                drain_video_encoder(
                    track,
                    t,
                    self.video_tb,
                    &self.timeline,
                    self.fmp4,
                    true,
                    sink,
                )?;
            }
        }
        if matches!(self.audio, Some(AudioPipe::Encode { .. })) {
            if let Some(AudioPipe::Encode { decoder, .. }) = &mut self.audio {
                let _ = decoder.send_eof();
            }
            self.drain_audio(true, sink)?;
        }
        if self.video_index.is_some() && self.timeline.cuts.is_empty() {
            return Err(TranscodeError::Corrupt("no video could be read".to_owned()));
        }
        for t in 0..self.tracks.len() {
            let track = &mut self.tracks[t];
            track
                .octx
                .write_trailer()
                .map_err(ffe("finishing the segmenter"))?;
            match track.audio_cuts.take() {
                Some(tl) => {
                    let r = poll_track(track, t, &tl, self.fmp4, true, sink);
                    track.audio_cuts = Some(tl);
                    r?;
                }
                None => poll_track(track, t, &self.timeline, self.fmp4, true, sink)?,
            }
            if track.emitted == 0 {
                return Err(TranscodeError::Corrupt(format!(
                    "track {t} produced no segment"
                )));
            }
        }
        Ok(())
    }
}

trait RescaleTo {
    fn rescale_to(self, from: Rational, to: Rational) -> i64;
}

impl RescaleTo for i64 {
    fn rescale_to(self, from: Rational, to: Rational) -> i64 {
        ff::Rescale::rescale(&self, from, to)
    }
}

fn receive_all(encoder: &mut encoder::Audio, out: &mut Vec<Packet>) {
    loop {
        let mut p = Packet::empty();
        if encoder.receive_packet(&mut p).is_err() {
            break;
        }
        out.push(p);
    }
}

/// `abuffer → (auto-inserted aresample/aformat) → abuffersink` producing `fltp` frames of
/// exactly the AAC encoder's frame size at `rate`.
fn audio_graph(
    first: &frame::Audio,
    decoder_tb: Rational,
    encoder: &encoder::Audio,
    rate: u32,
) -> Result<(filter::Graph, Rational), TranscodeError> {
    let mut g = filter::Graph::new();
    let layout = if first.channel_layout().bits() == 0 {
        ChannelLayout::default(i32::from(first.channels()))
    } else {
        first.channel_layout()
    };
    let tb = if valid(decoder_tb) {
        decoder_tb
    } else {
        Rational::new(1, first.rate() as i32)
    };
    let args = format!(
        "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
        tb.numerator(),
        tb.denominator(),
        first.rate(),
        first.format().name(),
        layout.bits()
    );
    let find = |n: &str| {
        filter::find(n).ok_or_else(|| TranscodeError::Unsupported(format!("no {n} filter")))
    };
    g.add(&find("abuffer")?, "in", &args)
        .map_err(ffe("abuffer"))?;
    g.add(&find("abuffersink")?, "out", "")
        .map_err(ffe("abuffersink"))?;
    {
        let mut out = g
            .get("out")
            .ok_or_else(|| TranscodeError::Ffmpeg("abuffersink missing".into()))?;
        out.set_sample_format(encoder.format());
        out.set_channel_layout(encoder.channel_layout());
        out.set_sample_rate(rate);
    }
    g.output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(&format!("aresample={rate}")))
        .map_err(ffe("audio filter graph"))?;
    g.validate().map_err(ffe("audio filter graph"))?;
    let mut out = g
        .get("out")
        .ok_or_else(|| TranscodeError::Ffmpeg("abuffersink missing".into()))?;
    let frame_size = encoder.frame_size().max(1);
    out.sink().set_frame_size(frame_size);
    let sink_tb = out.sink().time_base();
    let sink_tb = if valid(sink_tb) {
        sink_tb
    } else {
        Rational::new(1, rate as i32)
    };
    Ok((g, sink_tb))
}

/// Every muxed timestamp is the source's plus this, so that no track starts with a negative
/// dts (x264's B-frame delay, AAC priming, edit lists): a muxer would shift such a track on
/// its own, by a different amount per track, and renditions would no longer line up.
const TIMESTAMP_OFFSET_S: i64 = 1;

fn shift(p: &mut Packet, tb: Rational) {
    let ticks = (i64::from(tb.denominator()) * TIMESTAMP_OFFSET_S + i64::from(tb.numerator()) / 2)
        / i64::from(tb.numerator().max(1));
    p.set_pts(p.pts().map(|t| t + ticks));
    p.set_dts(p.dts().map(|t| t + ticks));
}

/// Audio-only tracks: after writing the packet at `pts`, checks whether the muxer cut there.
fn audio_only_step(
    track: &mut TrackOut,
    t: usize,
    tl: &mut Timeline,
    (pts, duration): (i64, i64),
    segment_secs: u32,
    fmp4: bool,
    sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    let start = *tl.cuts.first().unwrap_or(&pts);
    if tl.cuts.is_empty() {
        tl.cuts.push(pts);
    }
    tl.extend(pts + duration.max(0));
    if !reached(
        pts - start,
        tl.tb,
        i64::from(track.emitted) + 1,
        segment_secs,
    ) {
        return Ok(());
    }
    if playlist_entries(&track.playlist)?.len() > track.emitted as usize {
        tl.cuts.push(pts);
        poll_track(track, t, tl, fmp4, false, sink)?;
    }
    Ok(())
}

/// Hands every packet the rung's encoder thread has sent back to the track's muxer; with
/// `flush`, waits until the (already told to flush) encoder is done.
fn drain_video_encoder(
    track: &mut TrackOut,
    t: usize,
    src_tb: Rational,
    timeline: &Timeline,
    fmp4: bool,
    flush: bool,
    sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    loop {
        let Some(enc) = track.enc.as_mut() else {
            return Ok(());
        };
        if enc.flushed {
            return Ok(());
        }
        let got = if flush {
            enc.from
                .recv()
                .map_err(|_| mpsc::TryRecvError::Disconnected)
        } else {
            enc.from.try_recv()
        };
        let mut p = match got {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => {
                enc.flushed = true;
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Err(mpsc::TryRecvError::Empty) => return Ok(()),
            Err(mpsc::TryRecvError::Disconnected) => {
                return Err(TranscodeError::Ffmpeg(format!(
                    "track {t}: the encoder thread stopped"
                )))
            }
        };
        let Some((idx, otb)) = track.video else {
            return Ok(());
        };
        p.set_stream(idx);
        p.rescale_ts(src_tb, otb);
        shift(&mut p, otb);
        let key = p.is_key();
        p.write_interleaved(&mut track.octx)
            .map_err(ffe("muxing video"))?;
        if key {
            track.keyframes += 1;
        }
        poll_track(track, t, timeline, fmp4, false, sink)?;
    }
}

/// The segment URIs the `hls` muxer has listed so far.
fn playlist_entries(playlist: &Path) -> Result<Vec<String>, TranscodeError> {
    let text = match std::fs::read_to_string(playlist) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("#EXTINF") {
            if let Some(uri) = lines.find(|l| !l.trim().is_empty() && !l.starts_with('#')) {
                out.push(uri.trim().to_owned());
            }
        }
    }
    Ok(out)
}

/// Emits the segments of `track` that its muxer has finished. Video tracks only look when a
/// boundary keyframe went in that has not been accounted for; `last` is after the trailer.
fn poll_track(
    track: &mut TrackOut,
    t: usize,
    timeline: &Timeline,
    fmp4: bool,
    last: bool,
    sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    let video = track.video.is_some();
    if video && !last && track.keyframes <= track.emitted as usize + 1 {
        return Ok(());
    }
    let entries = playlist_entries(&track.playlist)?;
    while (track.emitted as usize) < entries.len() {
        let i = track.emitted as usize;
        let is_last = last && i + 1 == entries.len();
        let Some(duration_ms) = timeline.duration_ms(i, is_last) else {
            // The boundary that closed this segment is not known yet.
            if last {
                return Err(TranscodeError::Ffmpeg(format!(
                    "track {t}: the segmenter cut a segment at an unexpected place"
                )));
            }
            break;
        };
        if fmp4 && !track.init_sent {
            let init = track.dir.join("init.mp4");
            let bytes = std::fs::read(&init)?;
            sink(TranscodeEvent::Init { track: t, bytes })?;
            track.init_sent = true;
        }
        let uri = &entries[i];
        let path = if Path::new(uri).is_absolute() {
            PathBuf::from(uri)
        } else {
            track.dir.join(uri)
        };
        let bytes = std::fs::read(&path)?;
        let _ = std::fs::remove_file(&path);
        sink(TranscodeEvent::Segment {
            track: t,
            index: track.emitted,
            bytes,
            duration_ms,
        })?;
        track.emitted += 1;
    }
    Ok(())
}
