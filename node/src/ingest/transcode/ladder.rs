//! The ladder: [`probe`] opens the source and decides the renditions, one per rung that fits
//! (never upscaled; display aspect kept, even dimensions), with their RFC 6381 codecs
//! strings (read from what a real encoder and `mp4` muxer produce), which rungs remux the
//! source video, and whether the source audio is copied.

use super::*;

/// RFC 6381 `avc1.PPCCLL` of an H.264 stream, read from the `avcC` box an `mp4` muxer writes
/// for these codec parameters (safe access to the extradata).
pub(super) fn avc1_codecs(
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
    let mut src = open_source(input)?;
    if let Some(v) = src.video.as_mut() {
        if remuxable(v) {
            // A copied stream gets no deinterlacer: look at its first frame.
            v.interlaced = Some(first_frame_interlaced(input)?);
        }
    }
    let scratch = Scratch::new()?;
    plan_for(&src, config, &scratch.0)
}

pub(super) fn plan_for(
    src: &Source,
    config: &LadderConfig,
    scratch: &Path,
) -> Result<Plan, TranscodeError> {
    let top_audio = config
        .rungs
        .iter()
        .map(|r| r.audio_bitrate)
        .max()
        .unwrap_or(128_000);
    let audio = plan_audio(src, top_audio);
    let audio_copy = audio.first().map(|a| a.copy);
    let Some(v) = &src.video else {
        let mut plan = Plan {
            renditions: Vec::new(),
            duration_s: src.duration_s,
            remux: Vec::new(),
            rungs: Vec::new(),
            audio_copy,
            kinds: Vec::new(),
            media: Vec::new(),
            audio: Vec::new(),
            skipped: src.skipped_audio.clone(),
        };
        plan.push_audio(audio);
        return Ok(plan);
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
        // The audio is its own rendition: the master playlist adds its bandwidth.
        let bandwidth = video_bw.saturating_add(video_bw / 10);
        renditions.push(Rendition {
            name: r.name.clone(),
            width,
            height: r.height,
            bandwidth,
            codecs,
            frame_rate_milli: frame_rate_milli(v.fps),
        });
    }
    let n = renditions.len();
    let mut plan = Plan {
        renditions,
        duration_s: src.duration_s,
        remux,
        rungs,
        audio_copy,
        kinds: vec![TrackKind::Video; n],
        media: vec![None; n],
        audio: Vec::new(),
        skipped: src.skipped_audio.clone(),
    };
    plan.push_audio(audio);
    Ok(plan)
}

/// One audio rendition before it has a track number.
struct AudioOutPlan {
    stream: usize,
    copy: bool,
    channels: u8,
    bitrate: u32,
    name: String,
    media: MediaInfo,
}

impl Plan {
    fn push_audio(&mut self, outs: Vec<AudioOutPlan>) {
        for o in outs {
            let track = self.renditions.len();
            let bandwidth = o.bitrate.max(8_000).saturating_add(o.bitrate / 10);
            self.renditions.push(Rendition {
                name: o.name.clone(),
                width: 0,
                height: 0,
                bandwidth,
                codecs: "mp4a.40.2".to_owned(),
                frame_rate_milli: 0,
            });
            self.remux.push(o.copy);
            self.rungs.push(Rung {
                name: o.name,
                height: 0,
                video_bitrate: 0,
                audio_bitrate: o.bitrate,
            });
            self.kinds.push(TrackKind::Audio);
            self.media.push(Some(o.media));
            self.audio.push(AudioTrackPlan {
                track,
                stream: o.stream,
                channels: o.channels,
                copy: o.copy,
                bitrate: o.bitrate,
            });
        }
    }
}

/// Bitrate of a 5.1 AAC rendition, from the stereo one.
pub(super) fn surround_bitrate(stereo: u32) -> u32 {
    stereo.saturating_mul(3)
}

/// The audio renditions of `src`: per audio stream a stereo one (copied when the stream is
/// AAC-LC mono or stereo) and, for a stream of more than two channels, a 5.1 one; names,
/// languages and flags from the stream's tags and dispositions.
fn plan_audio(src: &Source, stereo_bitrate: u32) -> Vec<AudioOutPlan> {
    use format::stream::Disposition;
    let default_stream = src
        .audio
        .iter()
        .find(|a| a.disposition.contains(Disposition::DEFAULT))
        .or_else(|| src.audio.iter().find(|a| Some(a.index) == src.best_audio))
        .or(src.audio.first())
        .map(|a| a.index);
    let mut stereo = Vec::new();
    let mut surround = Vec::new();
    for (n, a) in src.audio.iter().enumerate() {
        let language = a
            .language
            .as_deref()
            .and_then(reelnet_proto::lang::normalize);
        let title = a.title.as_deref().map(clean_name).filter(|t| !t.is_empty());
        let mut characteristics = 0;
        let commentary = a.disposition.contains(Disposition::COMMENT)
            || title
                .as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains("commentary"));
        if commentary {
            characteristics |= MediaInfo::COMMENTARY;
        }
        if a.disposition.contains(Disposition::VISUAL_IMPAIRED)
            || a.disposition.contains(Disposition::DESCRIPTIONS)
        {
            characteristics |= MediaInfo::DESCRIBES_VIDEO;
        }
        let name = title
            .or_else(|| {
                language.as_deref().map(|l| {
                    reelnet_proto::lang::display_name(l).map_or(l.to_owned(), str::to_owned)
                })
            })
            .unwrap_or_else(|| format!("Audio {}", n + 1));
        let media = |group: &str, channels: u8, taken: &[AudioOutPlan]| {
            let mut unique = name.clone();
            let mut k = 2;
            while taken.iter().any(|o| o.media.name == unique) {
                unique = clean_name(&format!("{name} ({k})"));
                k += 1;
            }
            MediaInfo {
                group: group.to_owned(),
                language: language.clone(),
                name: unique,
                channels,
                default: Some(a.index) == default_stream,
                autoselect: characteristics == 0,
                forced: false,
                characteristics,
            }
        };
        let lang = language
            .as_deref()
            .map(|l| {
                l.bytes()
                    .filter(u8::is_ascii_alphanumeric)
                    .take(8)
                    .map(char::from)
                    .collect::<String>()
            })
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "und".to_owned());
        let copy = a.aac_lc;
        let channels = if a.channels >= 2 { 2 } else { 1 };
        let bitrate = if copy && a.bit_rate > 0 {
            a.bit_rate
        } else {
            stereo_bitrate
        };
        stereo.push(AudioOutPlan {
            stream: a.index,
            copy,
            channels,
            bitrate,
            name: format!("a{n}-{lang}"),
            media: media(
                reelnet_proto::manifest::AUDIO_GROUP_STEREO,
                channels,
                &stereo,
            ),
        });
        if a.channels > 2 {
            surround.push(AudioOutPlan {
                stream: a.index,
                copy: false,
                channels: 6,
                bitrate: surround_bitrate(stereo_bitrate),
                name: format!("a{n}-{lang}-51"),
                media: media(reelnet_proto::manifest::AUDIO_GROUP_SURROUND, 6, &surround),
            });
        }
    }
    stereo.extend(surround);
    stereo
}

/// A display name as a manifest takes it: no control characters or `"`, at most
/// [`MAX_MEDIA_NAME_LEN`](reelnet_proto::manifest::MAX_MEDIA_NAME_LEN) bytes.
fn clean_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control() && *c != '"') {
        if out.len() + c.len_utf8() > reelnet_proto::manifest::MAX_MEDIA_NAME_LEN {
            break;
        }
        out.push(c);
    }
    out.trim().to_owned()
}

/// The rung width for `height`: the display aspect kept, rounded to the nearest even number
/// (what `scale=-2:height` does).
pub(super) fn scaled_width(v: &VideoSrc, height: u32) -> u32 {
    let half = (f64::from(v.display_width) * f64::from(height) / f64::from(v.height) / 2.0).round();
    ((half as u32) * 2).clamp(2, reelnet_proto::manifest::MAX_DIMENSION)
}
