//! Cutting: each rung is muxed by libavformat's `hls` muxer into a private scratch
//! directory. For video rungs `hls_time` is tiny, so the muxer cuts at every keyframe, i.e.
//! exactly at our boundaries; an audio-only source is cut by the muxer on `segment_secs`.
//! A segment is picked up (and deleted) as soon as the muxer lists it in its playlist, which
//! it does right after closing the file, so segments are emitted while the input is still
//! being read. Durations come from the shared timeline, not from the muxer's rounded
//! `EXTINF`.

use super::*;

pub(super) struct TrackOut {
    pub(super) octx: format::context::Output,
    pub(super) dir: PathBuf,
    pub(super) playlist: PathBuf,
    /// Output stream index and time base of video / audio.
    pub(super) video: Option<(usize, Rational)>,
    pub(super) audio: Option<(usize, Rational)>,
    pub(super) enc: Option<EncodedVideo>,
    pub(super) remux: bool,
    /// Video keyframes handed to the muxer.
    pub(super) keyframes: usize,
    pub(super) emitted: u32,
    pub(super) init_sent: bool,
    /// Audio-only: boundaries learnt from the muxer, in the audio packet time base.
    pub(super) audio_cuts: Option<Timeline>,
}

pub(super) fn hls_options(config: &LadderConfig, dir: &Path, video: bool) -> Dictionary<'static> {
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

/// Every muxed timestamp is the source's plus this, so that no track starts with a negative
/// dts (x264's B-frame delay, AAC priming, edit lists): a muxer would shift such a track on
/// its own, by a different amount per track, and renditions would no longer line up.
pub(super) const TIMESTAMP_OFFSET_S: i64 = 1;

pub(super) fn shift(p: &mut Packet, tb: Rational) {
    let ticks = (i64::from(tb.denominator()) * TIMESTAMP_OFFSET_S + i64::from(tb.numerator()) / 2)
        / i64::from(tb.numerator().max(1));
    p.set_pts(p.pts().map(|t| t + ticks));
    p.set_dts(p.dts().map(|t| t + ticks));
}

/// Audio-only tracks: after writing the packet at `pts`, checks whether the muxer cut there.
pub(super) fn audio_only_step(
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
pub(super) fn drain_video_encoder(
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
pub(super) fn playlist_entries(playlist: &Path) -> Result<Vec<String>, TranscodeError> {
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
pub(super) fn poll_track(
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
