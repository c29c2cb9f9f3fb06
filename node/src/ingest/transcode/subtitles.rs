//! Subtitles: the source's text subtitle streams (SubRip, ASS/SSA, mov_text, WebVTT) decoded
//! with libavcodec into cues, and sidecar files' cues (parsed by the ingest, see
//! `ingest::sidecar`), both written out as segmented WebVTT: one segment per video segment
//! index, covering the same span of the shared timeline, emitted right after the video's
//! segment `i` closes (so stream subtitles grow with the video while a torrent downloads).
//! Image subtitle streams (PGS, VobSub, DVB) cannot become WebVTT: [`probe_subtitles`]
//! lists them as not supported, which is never an error.
//!
//! Timing: the segmenters mux every timestamp as the source's plus
//! [`TIMESTAMP_OFFSET_S`], so each WebVTT segment says `X-TIMESTAMP-MAP=MPEGTS:<offset in
//! 90 kHz>,LOCAL:00:00:00.000` and writes its cues in source time.

use reelnet_proto::subtitles::{self as vtt, Cue};

use super::*;

/// One subtitle rendition to make.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtitleTrack {
    /// Rendition name, e.g. `subs-en` (`[A-Za-z0-9._-]`, unique in the movie).
    pub name: String,
    /// Language tag (`en`, `fre`, `pt-BR`), from the stream's `language` tag or the
    /// sidecar's file name.
    pub language: Option<String>,
    /// The stream's or file's title, if any.
    pub title: Option<String>,
    pub forced: bool,
    pub default: bool,
    pub hearing_impaired: bool,
    pub origin: SubtitleOrigin,
}

/// Where a subtitle rendition's cues come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SubtitleOrigin {
    /// A text subtitle stream of the source (stream index, codec name).
    Stream { index: usize, codec: String },
    /// A sidecar file, already parsed (cue times from the file's 0, i.e. the video's first
    /// frame).
    Sidecar { file: String, cues: Vec<Cue> },
}

/// A subtitle stream that cannot become WebVTT (an image format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsupportedSubtitle {
    /// Stream index in the source.
    pub stream: usize,
    pub codec: String,
    pub language: Option<String>,
}

impl std::fmt::Display for UnsupportedSubtitle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "subtitle stream {} ({}{}): image subtitles are not supported",
            self.stream,
            self.codec,
            self.language
                .as_deref()
                .map(|l| format!(", {l}"))
                .unwrap_or_default()
        )
    }
}

/// The source's subtitle streams.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubtitleProbe {
    pub tracks: Vec<SubtitleTrack>,
    pub unsupported: Vec<UnsupportedSubtitle>,
}

/// The codecs decoded to text.
fn is_text_codec(id: codec::Id) -> bool {
    matches!(
        id,
        codec::Id::SUBRIP
            | codec::Id::SRT
            | codec::Id::ASS
            | codec::Id::SSA
            | codec::Id::MOV_TEXT
            | codec::Id::WEBVTT
            | codec::Id::TEXT
    )
}

/// A language tag from stream metadata, normalized like the audio tracks' (`eng` → `en`,
/// `ger` → `de`): `und` and anything not tag-like is dropped.
fn tag_language(lang: Option<&str>) -> Option<String> {
    lang.and_then(reelnet_proto::lang::normalize)
}

/// A rendition name for a subtitle track: `subs-<lang>[-forced]`, numbered when taken.
pub fn subtitle_name(language: Option<&str>, forced: bool, taken: &[String]) -> String {
    let mut base = format!("subs-{}", language.unwrap_or("und"));
    base.retain(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    base.truncate(20);
    if forced {
        base.push_str("-forced");
    }
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// Lists the source's subtitle streams: text ones as tracks to make, image ones as not
/// supported. Blocking.
pub fn probe_subtitles(input: &str) -> Result<SubtitleProbe, TranscodeError> {
    init()?;
    let src = open_source(input)?;
    Ok(scan_streams(&src.ictx))
}

pub(super) fn scan_streams(ictx: &format::context::Input) -> SubtitleProbe {
    use format::stream::Disposition;
    let mut out = SubtitleProbe::default();
    for st in ictx.streams() {
        let params = st.parameters();
        if params.medium() != media::Type::Subtitle {
            continue;
        }
        let id = params.id();
        let meta = st.metadata();
        let language = tag_language(meta.get("language"));
        let codec = ff::decoder::find(id)
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| format!("{id:?}").to_ascii_lowercase());
        if !is_text_codec(id) {
            tracing::info!(
                stream = st.index(),
                codec,
                "image subtitles are not supported"
            );
            out.unsupported.push(UnsupportedSubtitle {
                stream: st.index(),
                codec,
                language,
            });
            continue;
        }
        if out.tracks.len() >= MAX_SUBTITLE_TRACKS {
            continue;
        }
        let d = st.disposition();
        let forced = d.contains(Disposition::FORCED);
        let taken: Vec<String> = out.tracks.iter().map(|t| t.name.clone()).collect();
        out.tracks.push(SubtitleTrack {
            name: subtitle_name(language.as_deref(), forced, &taken),
            language,
            title: meta
                .get("title")
                .map(|t| t.chars().filter(|c| !c.is_control()).take(64).collect()),
            forced,
            default: d.contains(Disposition::DEFAULT),
            hearing_impaired: d.contains(Disposition::HEARING_IMPAIRED),
            origin: SubtitleOrigin::Stream {
                index: st.index(),
                codec,
            },
        });
    }
    out
}

/// Most subtitle renditions per movie (streams and sidecars together).
pub const MAX_SUBTITLE_TRACKS: usize = 16;

struct SubOut {
    /// Source stream index and decoder, for stream subtitles.
    stream: Option<(usize, Rational, ff::decoder::Subtitle)>,
    cues: Vec<Cue>,
    decode_errors: u32,
}

/// The running subtitle side of a transcode: collects cues from the demuxed packets and
/// writes segment `i` of every subtitle track once the video's segment `i` is out.
pub(super) struct SubtitlePipe {
    first_track: usize,
    outs: Vec<SubOut>,
    /// Source time (ms) of the video timeline's start, and each emitted segment's end.
    origin_ms: Option<i64>,
    next_start_ms: i64,
}

impl SubtitlePipe {
    pub(super) fn new(
        ictx: &format::context::Input,
        tracks: &[SubtitleTrack],
        first_track: usize,
    ) -> Result<Self, TranscodeError> {
        let mut outs = Vec::with_capacity(tracks.len());
        for t in tracks {
            let out = match &t.origin {
                SubtitleOrigin::Stream { index, codec } => {
                    let st = ictx.stream(*index).ok_or_else(|| {
                        TranscodeError::Config(format!("no subtitle stream {index}"))
                    })?;
                    let mut dec = codec::Context::from_parameters(st.parameters())
                        .and_then(|c| c.decoder().subtitle())
                        .map_err(|e| {
                            TranscodeError::Unsupported(format!(
                                "subtitle stream {index} ({codec}): {e}"
                            ))
                        })?;
                    dec.set_packet_time_base(st.time_base());
                    SubOut {
                        stream: Some((*index, st.time_base(), dec)),
                        cues: Vec::new(),
                        decode_errors: 0,
                    }
                }
                SubtitleOrigin::Sidecar { cues, .. } => SubOut {
                    stream: None,
                    cues: cues.clone(),
                    decode_errors: 0,
                },
            };
            outs.push(out);
        }
        Ok(Self {
            first_track,
            outs,
            origin_ms: None,
            next_start_ms: 0,
        })
    }

    /// Whether `stream` is one of the decoded subtitle streams.
    pub(super) fn wants(&self, stream: usize) -> bool {
        self.outs
            .iter()
            .any(|o| o.stream.as_ref().is_some_and(|(i, _, _)| *i == stream))
    }

    /// The video timeline's first timestamp, in source ms (set once). Sidecar cues count
    /// from the video's first frame, so they move there.
    pub(super) fn set_origin(&mut self, ms: i64) {
        if self.origin_ms.is_none() {
            self.origin_ms = Some(ms);
            self.next_start_ms = ms;
            for out in self.outs.iter_mut().filter(|o| o.stream.is_none()) {
                for c in &mut out.cues {
                    c.start_ms += ms;
                    c.end_ms += ms;
                }
            }
            tracing::debug!(origin_ms = ms, "subtitle timeline");
        }
    }

    /// Decodes a subtitle packet into cues.
    pub(super) fn packet(&mut self, packet: &Packet) {
        let si = packet.stream();
        let Some(out) = self
            .outs
            .iter_mut()
            .find(|o| o.stream.as_ref().is_some_and(|(i, _, _)| *i == si))
        else {
            return;
        };
        let Some((_, tb, dec)) = out.stream.as_mut() else {
            return;
        };
        let Some(pts) = packet.pts().or(packet.dts()) else {
            return;
        };
        let mut sub = ff::Subtitle::new();
        match dec.decode(packet, &mut sub) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                out.decode_errors += 1;
                if out.decode_errors <= 3 {
                    tracing::warn!(stream = si, "undecodable subtitle packet: {e}");
                }
                return;
            }
        }
        let base_ms = to_ms(pts, *tb);
        let start_ms = base_ms + i64::from(sub.start());
        let end_ms = if packet.duration() > 0 {
            base_ms + to_ms(packet.duration(), *tb)
        } else if sub.end() > sub.start() && sub.end() != u32::MAX {
            base_ms + i64::from(sub.end())
        } else {
            start_ms + 5_000
        };
        let mut lines = Vec::new();
        for rect in sub.rects() {
            let text = match rect {
                ff::codec::subtitle::Rect::Ass(a) => vtt::ass_event_to_vtt(a.get()),
                ff::codec::subtitle::Rect::Text(t) => vtt::markup_to_vtt(t.get()),
                _ => continue,
            };
            if !text.is_empty() {
                lines.push(text);
            }
        }
        if out.cues.len() >= vtt::MAX_CUES {
            return;
        }
        if let Some(cue) = vtt::make_cue(start_ms.max(0), end_ms, lines.join("\n")) {
            // Cues mostly arrive in order; keep them sorted by start.
            let at = out.cues.partition_point(|c| c.start_ms <= cue.start_ms);
            out.cues.insert(at, cue);
        }
    }

    /// The video's segment `index` (of `duration_ms`) is out: emits every subtitle track's
    /// segment `index` covering the same span.
    pub(super) fn segment_closed(
        &mut self,
        index: u32,
        duration_ms: u32,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let start = self.next_start_ms;
        let end = start + i64::from(duration_ms);
        self.next_start_ms = end;
        let mpegts = 90_000 * TIMESTAMP_OFFSET_S as u64;
        for (k, out) in self.outs.iter().enumerate() {
            let bytes = vtt::vtt_segment(&out.cues, start, end, mpegts).into_bytes();
            sink(TranscodeEvent::Segment {
                track: self.first_track + k,
                index,
                bytes,
                duration_ms,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_safe() {
        let mut taken = Vec::new();
        for (l, f) in [
            (Some("en"), false),
            (Some("en"), false),
            (Some("en"), true),
            (None, false),
            (Some("p t/../x"), false),
        ] {
            let n = subtitle_name(l, f, &taken);
            taken.push(n);
        }
        assert_eq!(
            taken,
            [
                "subs-en",
                "subs-en-2",
                "subs-en-forced",
                "subs-und",
                "subs-ptx"
            ]
        );
    }

    #[test]
    fn language_tags() {
        assert_eq!(tag_language(Some("eng")).as_deref(), Some("en"));
        assert_eq!(tag_language(Some("pt-BR")).as_deref(), Some("pt-BR"));
        assert_eq!(tag_language(Some("und")), None);
        assert_eq!(tag_language(Some("a\"b")), None);
        assert_eq!(tag_language(None), None);
    }
}
