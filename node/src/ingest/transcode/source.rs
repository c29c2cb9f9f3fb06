//! Source inspection: opens the input with libavformat (a path, or a loopback URL read in
//! playback order), finds its best video and audio streams and what they are (codec, size,
//! display aspect, pixel format, frame rate, time base, AAC-LC or not), and the scratch
//! directory the segmenters write into. A rung can remux the source video only when it is
//! 8-bit 4:2:0 H.264 with square pixels ([`remuxable`]).

use super::*;

pub(super) struct VideoSrc {
    pub(super) index: usize,
    pub(super) tb: Rational,
    pub(super) width: u32,
    pub(super) height: u32,
    /// Width after applying the sample aspect ratio.
    pub(super) display_width: u32,
    pub(super) pix: Pixel,
    pub(super) codec: codec::Id,
    pub(super) fps: Rational,
    pub(super) params: codec::Parameters,
    /// Clockwise rotation to apply for display (display matrix side data): 0, 90, 180 or
    /// 270. With 90 or 270 the sizes above are already those after rotation.
    pub(super) rotation: u32,
    /// The transfer is PQ (SMPTE 2084) or HLG (ARIB STD-B67): tone-mapped to SDR BT.709.
    pub(super) hdr: bool,
    /// The stream says BT.709 or nothing: its encoded rungs are tagged BT.709 (as are
    /// tone-mapped ones).
    pub(super) bt709: bool,
    /// Whether the first decoded frame is interlaced; only looked at by [`probe`] for a
    /// source that could otherwise be remuxed (`None`: not looked at).
    pub(super) interlaced: Option<bool>,
}

pub(super) struct AudioSrc {
    pub(super) index: usize,
    pub(super) tb: Rational,
    /// AAC-LC, mono or stereo: copied as the stereo rendition.
    pub(super) aac_lc: bool,
    pub(super) bit_rate: u32,
    pub(super) params: codec::Parameters,
    /// Decoded channels (what the stream says).
    pub(super) channels: u16,
    /// The `language` tag, when set.
    pub(super) language: Option<String>,
    /// The `title` tag, when set.
    pub(super) title: Option<String>,
    pub(super) disposition: format::stream::Disposition,
}

pub(super) struct Source {
    pub(super) ictx: format::context::Input,
    pub(super) video: Option<VideoSrc>,
    /// Every decodable audio stream, in stream order; at most
    /// [`MAX_AUDIO_STREAMS`](reelnet_proto::manifest::MAX_AUDIO_STREAMS).
    pub(super) audio: Vec<AudioSrc>,
    /// Audio streams left out, and why.
    pub(super) skipped_audio: Vec<String>,
    /// The stream libavformat thinks best: the default audio when no stream says it is.
    pub(super) best_audio: Option<usize>,
    pub(super) duration_s: Option<f64>,
}

pub(super) fn valid(r: Rational) -> bool {
    r.numerator() > 0 && r.denominator() > 0
}

/// The node's own torrent reader (see `ingest::torrent`): a loopback HTTP URL.
const TORRENT_READER_PREFIX: &str = "http://127.0.0.1:";

/// How libavformat opens `input`: the URL to give it and its options.
///
/// - `protocol_whitelist`: `file` for a local file (opened as `file:PATH`, so nothing in
///   the path is read as a protocol), or `http,tcp` for the node's own torrent reader on
///   127.0.0.1 (nothing else is opened: any other URL is refused before FFmpeg sees it).
///   Nested opens inherit the whitelist.
/// - `format_whitelist` ([`ALLOWED_FORMATS`]): the demuxer probing picks must be one of
///   these, checked before the demuxer reads anything, so a playlist (HLS `.m3u8`), a DASH
///   manifest (`.mpd`), a concat list or an image sequence inside a torrent is refused
///   instead of being followed to other URLs or files.
pub(super) fn open_options(input: &str) -> Result<(String, Dictionary<'static>), TranscodeError> {
    let mut opts = Dictionary::new();
    opts.set("format_whitelist", ALLOWED_FORMATS);
    let url = if input.starts_with(TORRENT_READER_PREFIX) {
        opts.set("protocol_whitelist", "http,tcp");
        input.to_owned()
    } else if input.contains("://") {
        return Err(TranscodeError::Open {
            input: input.to_owned(),
            reason: "only local files and the node's own torrent reader are opened".to_owned(),
        });
    } else {
        opts.set("protocol_whitelist", "file");
        format!("file:{input}")
    };
    Ok((url, opts))
}

pub(super) fn open_source(input: &str) -> Result<Source, TranscodeError> {
    let (url, opts) = open_options(input)?;
    let ictx = format::input_with_dictionary(&url, opts).map_err(|e| match e {
        // What libavformat answers when the probed format is not on the whitelist (the
        // protocol is always allowed: the input is a file or the torrent reader).
        ff::Error::Other {
            errno: ff::util::error::EINVAL,
        } => TranscodeError::FormatNotAllowed {
            input: input.to_owned(),
        },
        ff::Error::InvalidData => TranscodeError::Open {
            input: input.to_owned(),
            reason: "not a recognised media file (invalid data)".to_owned(),
        },
        e => TranscodeError::Open {
            input: input.to_owned(),
            reason: e.to_string(),
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
    let best_audio = ictx.streams().best(media::Type::Audio).map(|s| s.index());
    let audio_streams: Vec<usize> = ictx
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Audio)
        .map(|s| s.index())
        .collect();

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
        let rotation = st
            .side_data()
            .find(|sd| sd.kind() == codec::packet::side_data::Type::DisplayMatrix)
            .map_or(0, |sd| display_rotation(sd.data()));
        // Turned a quarter: the picture shown is display_width tall and height wide.
        let (width, height, display_width) = if rotation % 180 == 90 {
            (height, display_width, height)
        } else {
            (width, height, display_width)
        };
        use ff::color::{Space, TransferCharacteristic as Trc};
        let hdr = matches!(
            dec.color_transfer_characteristic(),
            Trc::SMPTE2084 | Trc::ARIB_STD_B67
        );
        let bt709 = hdr || matches!(dec.color_space(), Space::BT709 | Space::Unspecified);
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
            rotation,
            hdr,
            bt709,
            interlaced: None,
        });
    }

    let mut audio = Vec::new();
    let mut skipped_audio = Vec::new();
    for index in audio_streams {
        if audio.len() == reelnet_proto::manifest::MAX_AUDIO_STREAMS {
            skipped_audio.push(format!(
                "audio stream {index}: more than {} audio streams",
                reelnet_proto::manifest::MAX_AUDIO_STREAMS
            ));
            continue;
        }
        match audio_source(&ictx, index) {
            Ok(a) => audio.push(a),
            Err(e) => skipped_audio.push(format!("audio stream {index}: {e}")),
        }
    }
    for why in &skipped_audio {
        tracing::warn!(input, "{why} (skipped)");
    }
    if video.is_none() && audio.is_empty() {
        return Err(TranscodeError::NoMedia {
            input: input.to_owned(),
        });
    }
    // The container's duration counts every stream: a subtitle stream whose last event has
    // no end (a PGS/VobSub track) can make it weeks long. When the picture and sound
    // streams state their own durations, the longest of them is the movie's.
    let media_duration = video
        .iter()
        .map(|v| v.index)
        .chain(audio.iter().map(|a| a.index))
        .filter_map(|i| ictx.stream(i).and_then(|st| stream_duration_s(&st)))
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
    let duration_s = match (media_duration, duration_s) {
        (Some(media), Some(stated)) if stated > media + 1.0 => {
            tracing::debug!(
                input,
                stated,
                media,
                "container duration longer than its media streams; using theirs"
            );
            Some(media)
        }
        (Some(media), None) => Some(media),
        (_, stated) => stated,
    };
    Ok(Source {
        ictx,
        video,
        audio,
        skipped_audio,
        best_audio,
        duration_s,
    })
}

/// A stream's own duration, seconds: its `duration` field, else a Matroska `DURATION` tag
/// (`HH:MM:SS.fffffffff`, written per track by FFmpeg and mkvmerge).
fn stream_duration_s(st: &format::stream::Stream<'_>) -> Option<f64> {
    let tb = st.time_base();
    if st.duration() > 0 && valid(tb) {
        return Some(
            st.duration() as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator()),
        );
    }
    let tag = st.metadata().get("DURATION").map(str::to_owned)?;
    parse_hms(&tag)
}

/// `HH:MM:SS(.frac)` to seconds.
fn parse_hms(text: &str) -> Option<f64> {
    let mut parts = text.trim().splitn(3, ':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    let total = h * 3600.0 + m * 60.0 + s;
    (total.is_finite() && total > 0.0).then_some(total)
}

fn audio_source(ictx: &format::context::Input, index: usize) -> Result<AudioSrc, TranscodeError> {
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
    let channels = dec.channels();
    if channels == 0 {
        return Err(TranscodeError::Unsupported(
            "audio stream without channels".into(),
        ));
    }
    let aac_lc = codec_id == codec::Id::AAC
        && dec.profile() == codec::Profile::AAC(codec::profile::AAC::Low)
        && (1..=2).contains(&channels);
    let tb = st.time_base();
    if !valid(tb) {
        return Err(TranscodeError::Unsupported(
            "audio stream has no time base".into(),
        ));
    }
    let tag = |k: &str| {
        st.metadata()
            .get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(AudioSrc {
        index,
        tb,
        aac_lc,
        bit_rate: u32::try_from(dec.bit_rate()).unwrap_or(0),
        params,
        channels,
        language: tag("language"),
        title: tag("title"),
        disposition: st.disposition(),
    })
}

/// A scratch directory, removed on drop.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new() -> Result<Self, TranscodeError> {
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

pub(super) fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

pub(super) fn frame_rate_milli(fps: Rational) -> u32 {
    let v = i64::from(fps.numerator()) * 1000 / i64::from(fps.denominator().max(1));
    u32::try_from(v.clamp(0, i64::from(reelnet_proto::manifest::MAX_FRAME_RATE_MILLI))).unwrap_or(0)
}

/// Can this source's video be copied into an fMP4/TS H.264 rendition as it is? Not when it
/// needs a filter: rotated, HDR, or interlaced (known once [`first_frame_interlaced`] ran).
pub(super) fn remuxable(v: &VideoSrc) -> bool {
    v.codec == codec::Id::H264
        && matches!(v.pix, Pixel::YUV420P | Pixel::YUVJ420P)
        && v.display_width == v.width
        && v.rotation == 0
        && !v.hdr
        && v.interlaced != Some(true)
}

/// The clockwise rotation (0, 90, 180, 270) a 3×3 display matrix (nine native-endian
/// 16.16/2.30 fixed-point i32, as libavutil stores it) asks for, as the FFmpeg CLI's
/// autorotate reads it; 0 for anything malformed or not a quarter turn.
pub(super) fn display_rotation(data: &[u8]) -> u32 {
    let m: Vec<f64> = data
        .chunks_exact(4)
        .take(9)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(|b| f64::from(i32::from_ne_bytes(b)) / 65536.0)
        .collect();
    if m.len() < 9 {
        return 0;
    }
    let (s0, s1) = (m[0].hypot(m[3]), m[1].hypot(m[4]));
    if s0 == 0.0 || s1 == 0.0 {
        return 0;
    }
    // av_display_rotation_get is counter-clockwise; the CLI negates it.
    let ccw = -(m[1] / s1).atan2(m[0] / s0).to_degrees();
    let cw = (-ccw).round().rem_euclid(360.0);
    match cw as u32 {
        85..=95 => 90,
        175..=185 => 180,
        265..=275 => 270,
        _ => 0,
    }
}

/// Decodes the first video frame of `input` (reading at most a few hundred packets) and
/// says whether it is interlaced. Opens the input again, so the caller's demuxer position is
/// untouched.
pub(super) fn first_frame_interlaced(input: &str) -> Result<bool, TranscodeError> {
    let mut src = open_source(input)?;
    let Some(v) = &src.video else {
        return Ok(false);
    };
    let mut dec = codec::Context::from_parameters(v.params.clone())
        .and_then(|c| c.decoder().video())
        .map_err(ffe("video decoder"))?;
    let index = v.index;
    let mut frame = frame::Video::empty();
    let mut packet = Packet::empty();
    for _ in 0..500 {
        match read_packet(&mut packet, &mut src.ictx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(_) => continue,
        }
        if packet.stream() != index || dec.send_packet(&packet).is_err() {
            continue;
        }
        if dec.receive_frame(&mut frame).is_ok() {
            return Ok(frame.is_interlaced());
        }
    }
    let _ = dec.send_eof();
    Ok(dec.receive_frame(&mut frame).is_ok() && frame.is_interlaced())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::parse_hms;

    #[test]
    fn matroska_duration_tags() {
        assert_eq!(parse_hms("00:00:40.021000000"), Some(40.021));
        assert_eq!(parse_hms("01:02:03"), Some(3723.0));
        assert_eq!(parse_hms("1176:00:00.000"), Some(4_233_600.0));
        assert_eq!(parse_hms("garbage"), None);
        assert_eq!(parse_hms("00:00:00.000"), None);
        assert_eq!(parse_hms("00:xx:01"), None);
    }
}
