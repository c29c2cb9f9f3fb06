//! The transcode job: [`transcode`] opens the source, sets up one muxer per rendition, and
//! runs the decode loop, which alone owns the segmenters and the timeline: video packets are
//! copied (remux) or decoded and handed to the encoder threads, audio goes through the audio
//! pipe, and finished segments go to the caller's sink as events, in order.
//!
//! Remux: a rung whose height equals an 8-bit 4:2:0 H.264 source copies the source packets.
//! Boundaries are then taken from source keyframes (the first one at or after each multiple
//! of `segment_secs`), the encoded rungs force their IDRs onto those same pts, and the key
//! flag of the source keyframes that are not boundaries is cleared so the segmenter ignores
//! them.

use super::*;

pub(super) struct Job<'a> {
    pub(super) config: &'a LadderConfig,
    pub(super) fmp4: bool,
    pub(super) tracks: Vec<TrackOut>,
    /// Video: stream index, time base, decoder (when any rung is encoded).
    pub(super) video_index: Option<usize>,
    pub(super) video_tb: Rational,
    pub(super) decoder: Option<ff::decoder::Video>,
    /// The encoded rungs' threads (dropped after `tracks`: closed packet channels stop them).
    pub(super) encoders: Encoders,
    pub(super) remux_mode: bool,
    pub(super) timeline: Timeline,
    /// Boundaries decided on source keyframes, waiting for their decoded frame.
    pub(super) forced: VecDeque<i64>,
    pub(super) last_frame_pts: Option<i64>,
    pub(super) default_frame_dur: i64,
    pub(super) frames: u64,
    pub(super) decode_errors: u64,
    /// Deinterlace / tone map / rotate, between the decoder and the rungs.
    pub(super) vfilter: VideoFilter,
    pub(super) rotation: u32,
    pub(super) hdr: bool,
    /// One per source audio stream that has renditions.
    pub(super) audio: Vec<AudioPipe>,
    pub(super) first_pts_s: Option<f64>,
    pub(super) last_progress_s: f64,
    pub(super) duration_s: Option<f64>,
    /// Subtitle tracks, fed by the demuxer, cut along the first track's segments.
    pub(super) subs: Option<SubtitlePipe>,
    /// Seek thumbnails, fed by the decoded video frames.
    pub(super) thumbs: Option<Thumbnailer>,
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
    transcode_with(input, config, plan, &Extras::default(), cancel, sink)
}

/// [`transcode`], also making the subtitle and thumbnail tracks of `extras` (tracks
/// `plan.renditions.len()..`, subtitles first).
pub fn transcode_with(
    input: &str,
    config: &LadderConfig,
    plan: &Plan,
    extras: &Extras,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
) -> Result<Summary, TranscodeError> {
    init()?;
    config.validate()?;
    let started = Instant::now();
    let mut src = open_source(input)?;
    let scratch = Scratch::new()?;
    let mut job = Job::new(&src, config, plan, &scratch.0)?;
    job.add_extras(&src.ictx, extras, plan.renditions.len())?;
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

impl<'a> Job<'a> {
    pub(super) fn new(
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
        let audio_only = !plan.kinds.contains(&TrackKind::Video);
        if plan.kinds.len() != n {
            return Err(TranscodeError::Config(
                "plan has inconsistent tracks".into(),
            ));
        }
        if !audio_only && src.video.is_none() {
            return Err(TranscodeError::Unsupported(
                "the plan has video renditions but the input has no video".into(),
            ));
        }

        // Audio: one pipe per source stream, one output per audio rendition.
        let mut audio: Vec<AudioPipe> = Vec::new();
        // Per track: the audio codec parameters and packet time base of its stream.
        let mut audio_params: HashMap<usize, (codec::Parameters, Rational)> = HashMap::new();
        for ap in &plan.audio {
            let a = src
                .audio
                .iter()
                .find(|a| a.index == ap.stream)
                .ok_or_else(|| {
                    TranscodeError::Config("plan names an unknown audio stream".into())
                })?;
            let at = match audio.iter().position(|p| p.index == a.index) {
                Some(at) => at,
                None => {
                    audio.push(AudioPipe {
                        index: a.index,
                        in_tb: a.tb,
                        decoder: None,
                        outs: Vec::new(),
                    });
                    audio.len() - 1
                }
            };
            let pipe = &mut audio[at];
            if ap.copy {
                if !a.aac_lc {
                    return Err(TranscodeError::Config(
                        "plan copies audio that is not AAC-LC".into(),
                    ));
                }
                audio_params.insert(ap.track, (a.params.clone(), a.tb));
                pipe.outs.push(AudioOut {
                    track: ap.track,
                    enc: None,
                    tb: a.tb,
                });
                continue;
            }
            if pipe.decoder.is_none() {
                pipe.decoder = Some(
                    codec::Context::from_parameters(a.params.clone())
                        .and_then(|c| c.decoder().audio())
                        .map_err(ffe("audio decoder"))?,
                );
            }
            let decoder = pipe
                .decoder
                .as_ref()
                .ok_or_else(|| TranscodeError::Ffmpeg("audio decoder missing".into()))?;
            let (encoder, rate) = open_aac(decoder, ap.channels, ap.bitrate)?;
            let tb = Rational::new(1, rate as i32);
            audio_params.insert(ap.track, ((&encoder).into(), tb));
            pipe.outs.push(AudioOut {
                track: ap.track,
                enc: Some(AudioEnc {
                    encoder,
                    graph: None,
                    rate,
                    next_pts: None,
                }),
                tb,
            });
        }

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
            let mut audio_idx = None;
            let mut audio_tb = Rational::new(1, 48_000);
            let remux = plan.remux.get(i).copied().unwrap_or(false);
            if plan.kinds.get(i) == Some(&TrackKind::Video) {
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
            } else {
                let (params, tb) = audio_params.get(&i).cloned().ok_or_else(|| {
                    TranscodeError::Config(format!("audio track {i} has no audio stream"))
                })?;
                let mut ost = octx
                    .add_stream(encoder::find(codec::Id::None))
                    .map_err(ffe("hls audio stream"))?;
                ost.set_parameters(params);
                ost.set_time_base(tb);
                audio_tb = tb;
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
            vfilter: VideoFilter::Undecided,
            rotation: src.video.as_ref().map_or(0, |v| v.rotation),
            hdr: src.video.as_ref().is_some_and(|v| v.hdr),
            audio,
            first_pts_s: None,
            last_progress_s: f64::NEG_INFINITY,
            duration_s: src.duration_s,
            subs: None,
            thumbs: None,
        })
    }

    /// Sets up the subtitle and thumbnail tracks, numbered from `first_track`.
    pub(super) fn add_extras(
        &mut self,
        ictx: &format::context::Input,
        extras: &Extras,
        first_track: usize,
    ) -> Result<(), TranscodeError> {
        if self.video_index.is_none() {
            return Ok(()); // Audio-only: no timeline to hang subtitles or thumbnails on.
        }
        if !extras.subtitles.is_empty() {
            self.subs = Some(SubtitlePipe::new(ictx, &extras.subtitles, first_track)?);
        }
        if let (Some(layout), Some(_)) = (extras.thumbnails, &self.decoder) {
            let track = first_track + extras.subtitles.len();
            self.thumbs = Some(Thumbnailer::new(layout, track));
        }
        Ok(())
    }

    pub(super) fn run(
        &mut self,
        ictx: &mut format::context::Input,
        cancel: &AtomicBool,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        // Subtitle segment i follows the first track's segment i out of every sink call.
        let subs = std::cell::RefCell::new(self.subs.take());
        let outer_sink = sink;
        let sink = &mut |ev: TranscodeEvent| -> Result<(), TranscodeError> {
            let closed = match &ev {
                TranscodeEvent::Segment {
                    track: 0,
                    index,
                    duration_ms,
                    ..
                } => Some((*index, *duration_ms)),
                _ => None,
            };
            outer_sink(ev)?;
            match (closed, subs.borrow_mut().as_mut()) {
                (Some((i, d)), Some(s)) => s.segment_closed(i, d, outer_sink),
                _ => Ok(()),
            }
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
            match read_packet(&mut packet, ictx) {
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
            if let Some(s) = subs.borrow_mut().as_mut().filter(|s| s.wants(si)) {
                s.packet(&packet);
                continue;
            }
            let pipe = self.audio.iter().position(|p| p.index == si);
            let tb = if Some(si) == self.video_index {
                self.video_tb
            } else if let Some(p) = pipe {
                self.audio[p].in_tb
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
            match pipe {
                Some(p) if Some(si) != self.video_index => self.audio_packet(p, &packet, sink)?,
                _ => {
                    self.video_packet(&packet, sink)?;
                    if let (Some(s), Some(c)) =
                        (subs.borrow_mut().as_mut(), self.timeline.cuts.first())
                    {
                        s.set_origin(to_ms(*c, self.video_tb));
                    }
                }
            }
        }
        self.finish(sink)?;
        if let Some(t) = self.thumbs.as_mut() {
            t.flush(sink)?;
        }
        Ok(())
    }

    pub(super) fn video_packet(
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

    pub(super) fn drain_decoder(
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
            self.filter_frame(Some(decoded), sink)?;
        }
    }

    /// Runs a decoded frame (`None`: end of stream) through the video filter, if the
    /// source needs one, and hands what comes out to the encoders.
    pub(super) fn filter_frame(
        &mut self,
        decoded: Option<frame::Video>,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        if let (VideoFilter::Undecided, Some(first)) = (&self.vfilter, &decoded) {
            self.vfilter = match video_filter_spec(first, self.rotation, self.hdr) {
                Some(spec) => {
                    tracing::debug!(%spec, "video filter");
                    VideoFilter::On(video_graph(first, self.video_tb, &spec)?)
                }
                None => VideoFilter::Off,
            };
        }
        let VideoFilter::On(g) = &mut self.vfilter else {
            return match decoded {
                Some(f) => {
                    let ts = f.timestamp();
                    self.video_frame(f, ts, sink)
                }
                None => Ok(()),
            };
        };
        {
            let mut src = g
                .get("in")
                .ok_or_else(|| TranscodeError::Ffmpeg("buffer missing".into()))?;
            match decoded {
                Some(mut f) => {
                    let ts = f.timestamp();
                    f.set_pts(ts);
                    src.source().add(&f).map_err(ffe("video filter"))?;
                }
                None => src.source().flush().map_err(ffe("video filter"))?,
            }
        }
        let mut out = Vec::new();
        while let Some(mut sink_ctx) = g.get("out") {
            // bwdif doubles the time base; bring timestamps back to the source's.
            let sink_tb = sink_ctx.sink().time_base();
            let mut filtered = frame::Video::empty();
            if sink_ctx.sink().frame(&mut filtered).is_err() {
                break;
            }
            let ts = filtered.pts().map(|p| {
                if valid(sink_tb) {
                    p.rescale_to(sink_tb, self.video_tb)
                } else {
                    p
                }
            });
            out.push((filtered, ts));
        }
        for (f, ts) in out {
            self.video_frame(f, ts, sink)?;
        }
        Ok(())
    }

    /// Hands one picture (timestamp `ts` in the source time base) to the encoders.
    pub(super) fn video_frame(
        &mut self,
        decoded: frame::Video,
        ts: Option<i64>,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let pts = match (ts, self.last_frame_pts) {
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
        if let Some(t) = self.thumbs.as_mut() {
            t.frame(&decoded, to_ms(pts, self.video_tb), sink)?;
        }
        let dur = match decoded.packet().duration {
            // A filtered frame's duration is in the filter's time base: not used.
            d if d > 0 && !matches!(self.vfilter, VideoFilter::On(_)) => d,
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
    pub(super) fn encoder_failure(&self) -> TranscodeError {
        self.tracks
            .iter()
            .filter_map(|t| t.enc.as_ref())
            .find_map(|e| e.from.try_iter().find_map(Result::err))
            .unwrap_or_else(|| TranscodeError::Ffmpeg("an encoder thread stopped".into()))
    }

    pub(super) fn finish(
        &mut self,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        if self.decoder.is_some() {
            if let Some(dec) = self.decoder.as_mut() {
                let _ = dec.send_eof();
            }
            self.drain_decoder(sink)?;
            self.filter_frame(None, sink)?;
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
        for p in 0..self.audio.len() {
            if let Some(decoder) = self.audio[p].decoder.as_mut() {
                let _ = decoder.send_eof();
                self.drain_audio(p, true, sink)?;
            }
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
