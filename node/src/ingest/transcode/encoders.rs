//! Decode once, encode per rung: the source video is decoded a single time; every encoded
//! rung gets its own swscale to the rung size and its own libx264 encoder (`preset`, ABR
//! bitrate with `maxrate = bitrate`, `bufsize = 2 × bitrate`, `keyint=infinite:scenecut=0`,
//! so the encoder never places a keyframe by itself). Each encoded rung scales and encodes
//! on its own thread (a chain that passes the decoded frame on from rung to rung, see
//! [`Encoders`]), so rungs run in parallel with each other and with decoding.

use super::*;

/// Opens the libx264 encoder of one rung (also used by [`probe`] to learn the codecs string).
pub(super) fn open_x264(
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
    if v.bt709 {
        // SDR BT.709 (tone-mapped, or what the source said or left unsaid).
        enc.set_color_primaries(ff::color::Primaries::BT709);
        enc.set_color_transfer_characteristic(ff::color::TransferCharacteristic::BT709);
        enc.set_colorspace(ff::color::Space::BT709);
        enc.set_color_range(ff::color::Range::MPEG);
    }
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

/// The libavfilter chain a decoded picture goes through before the rungs scale it, or
/// `None` when it needs none: `bwdif` for interlaced frames, zscale + `tonemap` (hable) to
/// SDR BT.709 for PQ/HLG, `transpose`/flips for a rotated source, and always 8-bit
/// `yuv420p` out. The rungs' swscale then honours the sample aspect ratio (their sizes
/// follow the display aspect; x264 writes square pixels).
pub(super) fn video_filter_spec(first: &frame::Video, rotation: u32, hdr: bool) -> Option<String> {
    use ff::color::TransferCharacteristic as Trc;
    let mut parts: Vec<&str> = Vec::new();
    if first.is_interlaced() {
        parts.push("bwdif=mode=send_frame:parity=auto:deint=interlaced");
    }
    if hdr
        || matches!(
            first.color_transfer_characteristic(),
            Trc::SMPTE2084 | Trc::ARIB_STD_B67
        )
    {
        parts.push(
            "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,\
             tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv",
        );
    }
    match rotation {
        90 => parts.push("transpose=clock"),
        180 => parts.push("hflip,vflip"),
        270 => parts.push("transpose=cclock"),
        _ => {}
    }
    if parts.is_empty() {
        return None;
    }
    parts.push("format=yuv420p");
    Some(parts.join(","))
}

/// `buffer → spec → buffersink` for frames like `first` (timestamps in `tb`, kept as they
/// are by every filter of [`video_filter_spec`]).
pub(super) fn video_graph(
    first: &frame::Video,
    tb: Rational,
    spec: &str,
) -> Result<filter::Graph, TranscodeError> {
    let mut g = filter::Graph::new();
    let pix = first
        .format()
        .descriptor()
        .map(|d| d.name().to_owned())
        .ok_or_else(|| TranscodeError::Unsupported(format!("pixel format {:?}", first.format())))?;
    let sar = first.aspect_ratio();
    let sar = if valid(sar) { sar } else { Rational::new(1, 1) };
    let args = format!(
        "video_size={}x{}:pix_fmt={pix}:time_base={}/{}:pixel_aspect={}/{}",
        first.width(),
        first.height(),
        tb.numerator(),
        tb.denominator().max(1),
        sar.numerator(),
        sar.denominator()
    );
    let find = |n: &str| {
        filter::find(n).ok_or_else(|| TranscodeError::Unsupported(format!("no {n} filter")))
    };
    g.add(&find("buffer")?, "in", &args)
        .map_err(ffe("video buffer"))?;
    g.add(&find("buffersink")?, "out", "")
        .map_err(ffe("video buffersink"))?;
    g.output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(spec))
        .map_err(|e| TranscodeError::Ffmpeg(format!("video filter graph {spec:?}: {e}")))?;
    g.validate()
        .map_err(|e| TranscodeError::Ffmpeg(format!("video filter graph {spec:?}: {e}")))?;
    Ok(g)
}

/// The video filter of a job: decided on the first decoded frame.
pub(super) enum VideoFilter {
    Undecided,
    Off,
    On(filter::Graph),
}

/// What the decode loop hands to a rung's encoder thread.
pub(super) enum ToEncoder {
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
pub(super) type FromEncoder = Result<Option<Packet>, TranscodeError>;

/// Decoded frames queued per rung before the thread in front of it waits.
pub(super) const ENCODER_QUEUE: usize = 4;

/// The encoded rungs' threads. Each rung's swscale + libx264 run on a dedicated thread, so the
/// rungs scale and encode in parallel with each other and with decoding (as the `ffmpeg`
/// CLI's encoder threads do). The threads form a chain, smallest rung first: a thread scales
/// the decoded frame for its rung, passes the same frame on to the next (bigger) rung, then
/// encodes; so a frame is never copied, and the top rung can take it as it is when it already
/// has the rung's size and format. Packets come back per rung on its own channel
/// ([`EncodedVideo`]) and are muxed by the decode loop, which alone owns the segmenters and
/// the timeline.
pub(super) struct Encoders {
    /// The first thread of the chain.
    pub(super) head: Option<mpsc::SyncSender<ToEncoder>>,
    pub(super) threads: Vec<std::thread::JoinHandle<()>>,
    /// Tells the threads to stop without finishing their queues.
    pub(super) stop: Arc<AtomicBool>,
}

impl Encoders {
    pub(super) fn new() -> Self {
        Self {
            head: None,
            threads: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts the thread of one rung; it becomes the head of the chain, so add the rungs
    /// biggest first.
    pub(super) fn spawn(
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
    pub(super) fn send(&self, msg: ToEncoder) -> bool {
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
pub(super) struct EncodedVideo {
    /// Encoded packets from the rung's thread.
    pub(super) from: mpsc::Receiver<FromEncoder>,
    /// The flushed encoder's `None` has been received.
    pub(super) flushed: bool,
}

/// A rung's encoder thread.
pub(super) struct RungThread {
    pub(super) encoder: encoder::Video,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) frames: mpsc::Receiver<ToEncoder>,
    /// The next rung in the chain.
    pub(super) next: Option<mpsc::SyncSender<ToEncoder>>,
    pub(super) packets: mpsc::Sender<FromEncoder>,
    pub(super) stop: Arc<AtomicBool>,
}

impl RungThread {
    pub(super) fn run(mut self) {
        if let Err(e) = self.encode() {
            let _ = self.packets.send(Err(e));
        }
    }

    /// Passes a message on to the next rung. A rung that has stopped reports why itself.
    pub(super) fn forward(&mut self, msg: ToEncoder) {
        if let Some(next) = &self.next {
            if next.send(msg).is_err() {
                self.next = None;
            }
        }
    }

    /// Sends the encoder's ready packets back; false once the job is gone.
    pub(super) fn drain(&mut self, durations: &mut HashMap<i64, i64>) -> bool {
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

    pub(super) fn encode(&mut self) -> Result<(), TranscodeError> {
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
