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
    let src = open_source(input)?;
    let scratch = Scratch::new()?;
    plan_for(&src, config, &scratch.0)
}

pub(super) fn plan_for(
    src: &Source,
    config: &LadderConfig,
    scratch: &Path,
) -> Result<Plan, TranscodeError> {
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
pub(super) fn scaled_width(v: &VideoSrc, height: u32) -> u32 {
    let half = (f64::from(v.display_width) * f64::from(height) / f64::from(v.height) / 2.0).round();
    ((half as u32) * 2).clamp(2, reelnet_proto::manifest::MAX_DIMENSION)
}
