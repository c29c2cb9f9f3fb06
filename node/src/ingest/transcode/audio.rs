//! Audio: AAC-LC source audio is copied for every rung; anything else is decoded and encoded
//! once with FFmpeg's AAC encoder (fltp, 1024-sample frames via an `abuffersink` frame size),
//! and the same AAC packets are muxed into every rung (the decode loop's audio half).

use super::*;

pub(super) enum AudioPipe {
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

impl Job<'_> {
    pub(super) fn audio_packet(
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
    pub(super) fn drain_audio(
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
    pub(super) fn mux_audio(
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
}

pub(super) fn receive_all(encoder: &mut encoder::Audio, out: &mut Vec<Packet>) {
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
pub(super) fn audio_graph(
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
