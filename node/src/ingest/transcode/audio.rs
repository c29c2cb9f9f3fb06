//! Audio: every audio stream of the source (see [`Plan::audio`]) is one [`AudioPipe`]:
//! decoded once (unless its only rendition copies AAC-LC packets), then per rendition
//! resampled/remixed by its own `abuffer → aresample → abuffersink` graph (stereo, or 5.1
//! for the surround group: libswresample down- or upmixes) into fltp frames of exactly the
//! AAC encoder's frame size, and encoded once. Each rendition is its own audio-only track,
//! cut by its `hls` muxer every `segment_secs` on the audio clock (the video's boundaries
//! are the first frame at or after the same multiples, so segment `i` of every track covers
//! the same span to within one frame when the video is encoded).

use super::*;

/// One source audio stream and the renditions made from it.
pub(super) struct AudioPipe {
    /// Source stream index.
    pub(super) index: usize,
    /// Time base of the source stream's packets (and decoded frames).
    pub(super) in_tb: Rational,
    /// Present when any rendition is encoded.
    pub(super) decoder: Option<ff::decoder::Audio>,
    pub(super) outs: Vec<AudioOut>,
}

/// One audio rendition of a pipe.
pub(super) struct AudioOut {
    /// Its track.
    pub(super) track: usize,
    /// `None`: the source packets are copied.
    pub(super) enc: Option<AudioEnc>,
    /// Time base of the packets handed to the muxer.
    pub(super) tb: Rational,
}

pub(super) struct AudioEnc {
    pub(super) encoder: encoder::Audio,
    pub(super) graph: Option<(filter::Graph, Rational)>,
    pub(super) rate: u32,
    pub(super) next_pts: Option<i64>,
}

/// Opens FFmpeg's AAC encoder for `channels` (1, 2 or 6) at the decoder's rate (or 48 kHz
/// when AAC has no such rate).
pub(super) fn open_aac(
    decoder: &ff::decoder::Audio,
    channels: u8,
    bitrate: u32,
) -> Result<(encoder::Audio, u32), TranscodeError> {
    let layout = match channels {
        1 => ChannelLayout::MONO,
        2 => ChannelLayout::STEREO,
        // AAC channel configuration 6 (no PCE): what browsers and ffprobe know as 5.1.
        _ => ChannelLayout::_5POINT1_BACK,
    };
    let rate = match decoder.rate() {
        r @ (8000 | 11025 | 12000 | 16000 | 22050 | 24000 | 32000 | 44100 | 48000 | 88200
        | 96000) => r,
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
    enc.set_format(format::Sample::F32(format::sample::Type::Planar));
    enc.set_bit_rate(bitrate as usize);
    enc.set_time_base(Rational::new(1, rate as i32));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let enc = enc.open_as(codec).map_err(ffe("opening the AAC encoder"))?;
    Ok((enc, rate))
}

impl Job<'_> {
    pub(super) fn audio_packet(
        &mut self,
        pipe: usize,
        packet: &Packet,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let Some(p) = self.audio.get_mut(pipe) else {
            return Ok(());
        };
        let copies: Vec<(usize, Rational)> = p
            .outs
            .iter()
            .filter(|o| o.enc.is_none())
            .map(|o| (o.track, o.tb))
            .collect();
        let mut decode = false;
        if let Some(decoder) = p.decoder.as_mut() {
            match decoder.send_packet(packet) {
                Ok(()) => decode = true,
                Err(ff::Error::InvalidData) => self.decode_errors += 1,
                Err(e) => return Err(TranscodeError::Ffmpeg(format!("decoding audio: {e}"))),
            }
        }
        if packet.pts().is_some() {
            for (track, tb) in copies {
                self.mux_audio(track, packet, tb, sink)?;
            }
        }
        if decode {
            self.drain_audio(pipe, false, sink)?;
        }
        Ok(())
    }

    /// Pulls decoded audio of pipe `pipe` through each rendition's resampler into its AAC
    /// encoder and muxes the packets.
    pub(super) fn drain_audio(
        &mut self,
        pipe: usize,
        eof: bool,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let mut out_packets: Vec<(usize, Rational, Packet)> = Vec::new();
        if let Some(AudioPipe {
            in_tb,
            decoder: Some(decoder),
            outs,
            ..
        }) = self.audio.get_mut(pipe)
        {
            let mut decoded = frame::Audio::empty();
            loop {
                match decoder.receive_frame(&mut decoded) {
                    Ok(()) => {}
                    Err(ff::Error::InvalidData) => continue,
                    Err(_) => break,
                }
                let ts = decoded.timestamp();
                decoded.set_pts(ts);
                let encoded = outs.iter().filter(|o| o.enc.is_some()).count();
                for (k, enc) in outs.iter_mut().filter_map(|o| o.enc.as_mut()).enumerate() {
                    if enc.graph.is_none() {
                        enc.graph = Some(audio_graph(&decoded, *in_tb, &enc.encoder, enc.rate)?);
                    }
                    if let Some((g, _)) = enc.graph.as_mut() {
                        let mut src = g
                            .get("in")
                            .ok_or_else(|| TranscodeError::Ffmpeg("abuffer missing".into()))?;
                        // The source takes the frame's buffers: every rendition but the
                        // last gets a copy.
                        if k + 1 < encoded {
                            let copy = decoded.clone();
                            src.source().add(&copy).map_err(ffe("audio filter"))?;
                        } else {
                            src.source().add(&decoded).map_err(ffe("audio filter"))?;
                        }
                    }
                }
            }
            for out in outs.iter_mut() {
                let (track, tb) = (out.track, out.tb);
                let Some(enc) = out.enc.as_mut() else {
                    continue;
                };
                let mut packets = Vec::new();
                encode_filtered(enc, eof, &mut packets)?;
                out_packets.extend(packets.into_iter().map(|p| (track, tb, p)));
            }
        }
        for (track, tb, p) in out_packets {
            self.mux_audio(track, &p, tb, sink)?;
        }
        Ok(())
    }

    /// Writes one audio packet (time base `tb`) into audio track `t`.
    pub(super) fn mux_audio(
        &mut self,
        t: usize,
        packet: &Packet,
        tb: Rational,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let Some(pts) = packet.pts() else {
            return Ok(());
        };
        let Some(track) = self.tracks.get_mut(t) else {
            return Ok(());
        };
        let Some((idx, otb)) = track.audio else {
            return Ok(());
        };
        let mut p = packet.clone();
        p.set_stream(idx);
        p.set_position(-1);
        p.rescale_ts(tb, otb);
        shift(&mut p, otb);
        p.write_interleaved(&mut track.octx)
            .map_err(ffe("muxing audio"))?;
        if let Some(mut tl) = track.audio_cuts.take() {
            // Audio tracks: the muxer cuts on time; learn where from its playlist.
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
        }
        Ok(())
    }
}

/// Takes every frame the rendition's graph has ready (all of it at `eof`) through the AAC
/// encoder.
fn encode_filtered(
    enc: &mut AudioEnc,
    eof: bool,
    out_packets: &mut Vec<Packet>,
) -> Result<(), TranscodeError> {
    let AudioEnc {
        encoder,
        graph,
        rate,
        next_pts,
    } = enc;
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
            receive_all(encoder, out_packets);
        }
    }
    if eof {
        let _ = encoder.send_eof();
        receive_all(encoder, out_packets);
    }
    Ok(())
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
