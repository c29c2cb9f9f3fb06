//! Seek thumbnails: from the video frames the decode loop already decodes, one frame every
//! `interval_s` seconds of the shared timeline (the first frame at or after each multiple)
//! is scaled to a tile and placed into a sprite sheet of `columns × rows` tiles; every
//! finished sheet is encoded as a JPEG with libavcodec's `mjpeg` encoder and emitted as the
//! next segment of the thumbnails track (the last, partial sheet when the video ends). The
//! tile at position `k` (over all sheets) shows the frame at `k × interval_s` from the video's
//! start, which is what the gateway's `thumbnails.vtt` index says.

use super::*;

/// Seek thumbnail settings (`[ingest.thumbnails]` in the node config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailConfig {
    /// Make thumbnails at all.
    pub enabled: bool,
    /// Seconds between two thumbnails (1..=600).
    pub interval_s: u32,
    /// Tile width in pixels (32..=640, even); the height follows the video's aspect.
    pub tile_width: u32,
    /// Tiles per sheet row and column (1..=10 each).
    pub columns: u8,
    pub rows: u8,
}

impl Default for ThumbnailConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_s: 10,
            tile_width: 160,
            columns: 5,
            rows: 5,
        }
    }
}

impl ThumbnailConfig {
    pub fn validate(&self) -> Result<(), TranscodeError> {
        let bad = |m: &str| Err(TranscodeError::Config(format!("thumbnails: {m}")));
        if !(1..=600).contains(&self.interval_s) {
            return bad("interval_s must be 1..=600");
        }
        if !(32..=640).contains(&self.tile_width) || !self.tile_width.is_multiple_of(2) {
            return bad("tile_width must be an even 32..=640");
        }
        if !(1..=10).contains(&self.columns) || !(1..=10).contains(&self.rows) {
            return bad("columns and rows must be 1..=10");
        }
        Ok(())
    }
}

/// The sprite sheet layout of one movie's thumbnails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailLayout {
    pub interval_ms: u32,
    pub tile_width: u16,
    pub tile_height: u16,
    pub columns: u8,
    pub rows: u8,
}

impl ThumbnailLayout {
    /// The layout for a video displayed at `width × height` (e.g. the top rendition's size).
    pub fn for_video(config: &ThumbnailConfig, width: u32, height: u32) -> Option<Self> {
        if !config.enabled || width < 2 || height < 2 {
            return None;
        }
        let tw = config.tile_width;
        let th = even((u64::from(tw) * u64::from(height) / u64::from(width)).clamp(2, 1024) as u32);
        Some(Self {
            interval_ms: config.interval_s.saturating_mul(1000),
            tile_width: u16::try_from(tw).ok()?,
            tile_height: u16::try_from(th).ok()?,
            columns: config.columns,
            rows: config.rows,
        })
    }

    fn tiles_per_sheet(&self) -> u64 {
        u64::from(self.columns) * u64::from(self.rows)
    }
}

/// At most this many thumbnails per movie (a day at 1 s): a timestamp jump cannot make
/// the loop fill sheets for ever.
const MAX_TILES: u64 = 86_400;

/// The running thumbnailer, owned by the decode loop.
pub(super) struct Thumbnailer {
    layout: ThumbnailLayout,
    track: usize,
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    sheet: Option<frame::Video>,
    /// Tiles placed so far (over all sheets), and sheets emitted.
    tiles: u64,
    sheets: u32,
    origin_ms: Option<i64>,
}

impl Thumbnailer {
    pub(super) fn new(layout: ThumbnailLayout, track: usize) -> Self {
        Self {
            layout,
            track,
            scaler: None,
            sheet: None,
            tiles: 0,
            sheets: 0,
            origin_ms: None,
        }
    }

    /// A decoded video frame at `pts_ms` (source time): becomes a tile when it is the first
    /// at or after the next multiple of the interval.
    pub(super) fn frame(
        &mut self,
        frame: &frame::Video,
        pts_ms: i64,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let origin = *self.origin_ms.get_or_insert(pts_ms);
        // A frame that stands for several intervals (a long still) fills each of them.
        while origin
            + i64::try_from(self.tiles)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(i64::from(self.layout.interval_ms))
            <= pts_ms
        {
            if self.tiles >= MAX_TILES {
                return Ok(());
            }
            self.place(frame, sink)?;
        }
        Ok(())
    }

    fn place(
        &mut self,
        frame: &frame::Video,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let (tw, th) = (
            u32::from(self.layout.tile_width),
            u32::from(self.layout.tile_height),
        );
        let per_sheet = self.layout.tiles_per_sheet();
        let pos = self.tiles % per_sheet;
        if pos == 0 && self.sheet.is_some() {
            self.flush(sink)?;
        }
        let (fmt, w, h) = (frame.format(), frame.width(), frame.height());
        if self
            .scaler
            .as_ref()
            .is_none_or(|(f, sw, sh, _)| (*f, *sw, *sh) != (fmt, w, h))
        {
            let ctx =
                scaling::Context::get(fmt, w, h, Pixel::YUVJ420P, tw, th, scaling::Flags::BILINEAR)
                    .map_err(ffe("thumbnail scaler"))?;
            self.scaler = Some((fmt, w, h, ctx));
        }
        let mut tile = frame::Video::empty();
        if let Some((_, _, _, ctx)) = self.scaler.as_mut() {
            ctx.run(frame, &mut tile)
                .map_err(ffe("scaling a thumbnail"))?;
        }
        let cols = u32::from(self.layout.columns);
        let rows = u32::from(self.layout.rows);
        let sheet = self.sheet.get_or_insert_with(|| {
            let mut s = frame::Video::new(Pixel::YUVJ420P, tw * cols, th * rows);
            for p in 0..3 {
                let fill = if p == 0 { 0 } else { 128 };
                s.data_mut(p).fill(fill);
            }
            s
        });
        let pos = u32::try_from(pos).unwrap_or(0);
        let (x, y) = ((pos % cols) * tw, (pos / cols) * th);
        for p in 0..3usize {
            let (px, py, pw, ph) = if p == 0 {
                (x, y, tw, th)
            } else {
                (x / 2, y / 2, tw / 2, th / 2)
            };
            let (ss, ds) = (tile.stride(p), sheet.stride(p));
            let src = tile.data(p);
            let dst = sheet.data_mut(p);
            for row in 0..ph as usize {
                let s0 = row * ss;
                let d0 = (py as usize + row) * ds + px as usize;
                let (Some(s), Some(d)) = (
                    src.get(s0..s0 + pw as usize),
                    dst.get_mut(d0..d0 + pw as usize),
                ) else {
                    return Err(TranscodeError::Ffmpeg(
                        "thumbnail tile out of bounds".into(),
                    ));
                };
                d.copy_from_slice(s);
            }
        }
        self.tiles += 1;
        Ok(())
    }

    /// Encodes and emits the sheet being filled, if any.
    pub(super) fn flush(
        &mut self,
        sink: &mut dyn FnMut(TranscodeEvent) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let Some(sheet) = self.sheet.take() else {
            return Ok(());
        };
        let bytes = encode_jpeg(&sheet)?;
        let per_sheet = self.layout.tiles_per_sheet();
        let in_sheet = match self.tiles % per_sheet {
            0 => per_sheet,
            n => n,
        };
        let duration_ms = u32::try_from(in_sheet * u64::from(self.layout.interval_ms))
            .unwrap_or(u32::MAX)
            .max(1);
        sink(TranscodeEvent::Segment {
            track: self.track,
            index: self.sheets,
            bytes,
            duration_ms,
        })?;
        self.sheets += 1;
        Ok(())
    }
}

/// One YUVJ420P picture → JPEG bytes (libavcodec `mjpeg`).
fn encode_jpeg(picture: &frame::Video) -> Result<Vec<u8>, TranscodeError> {
    let codec = encoder::find(codec::Id::MJPEG)
        .ok_or_else(|| TranscodeError::Unsupported("no MJPEG encoder".into()))?;
    let mut enc = codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(ffe("mjpeg context"))?;
    enc.set_width(picture.width());
    enc.set_height(picture.height());
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(Rational::new(1, 1));
    // One picture per second of "stream": the bit budget is per sheet, so the rate control
    // settles on the best quantiser allowed.
    enc.set_bit_rate(4_000_000);
    enc.set_qmin(2);
    enc.set_qmax(12);
    let mut enc = enc
        .open_as(codec)
        .map_err(ffe("opening the mjpeg encoder"))?;
    let mut pic = picture.clone();
    pic.set_pts(Some(0));
    enc.send_frame(&pic)
        .map_err(ffe("encoding a thumbnail sheet"))?;
    enc.send_eof().map_err(ffe("encoding a thumbnail sheet"))?;
    let mut out = Vec::new();
    let mut packet = Packet::empty();
    while enc.receive_packet(&mut packet).is_ok() {
        if let Some(d) = packet.data() {
            out.extend_from_slice(d);
        }
    }
    if out.is_empty() {
        return Err(TranscodeError::Ffmpeg(
            "the mjpeg encoder returned nothing".into(),
        ));
    }
    Ok(out)
}
