//! Text subtitles: sidecar files (SubRip, WebVTT, ASS/SSA) decoded from whatever encoding
//! they come in, ASS styling reduced to what WebVTT carries, and the segmented WebVTT that
//! HLS subtitle renditions are made of. Pure functions over bytes, size-limited, fuzzed
//! (`proto/fuzz/fuzz_targets/subtitles.rs`): a sidecar comes from a torrent, so from anyone.
//!
//! Cue times are milliseconds on the source's timeline. A WebVTT segment maps its local
//! time 0 to MPEG-TS time `mpegts` (90 kHz) through `X-TIMESTAMP-MAP`, so a player lines
//! the cues up with the video segments, whose timestamps are the source's plus a fixed
//! offset.

use std::fmt::Write as _;

/// Largest sidecar file read (bytes).
pub const MAX_SIDECAR_BYTES: usize = 4 << 20;
/// Most cues kept per subtitle source; later ones are dropped.
pub const MAX_CUES: usize = 20_000;
/// Longest cue text kept (bytes of WebVTT payload); longer text is cut.
pub const MAX_CUE_TEXT: usize = 2_048;
/// Longest a cue may last (ms); longer ones are cut to this.
pub const MAX_CUE_MS: i64 = 10 * 60 * 1000;

/// One cue: `[start_ms, end_ms)` on the source's timeline, `text` WebVTT cue payload
/// (escaped; only `<i>`, `<b>`, `<u>` tags; lines separated by `\n`, never empty lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// A sidecar's syntax, from its file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtitleFormat {
    Srt,
    WebVtt,
    Ass,
}

impl SubtitleFormat {
    /// `srt`, `vtt`, `ass` or `ssa` (any case).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "srt" => Some(Self::Srt),
            "vtt" => Some(Self::WebVtt),
            "ass" | "ssa" => Some(Self::Ass),
            _ => None,
        }
    }
}

/// Why a sidecar was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubtitleError {
    #[error("subtitle file is {0} bytes, more than the {MAX_SIDECAR_BYTES} allowed")]
    TooLarge(usize),
    #[error("no cue could be read")]
    NoCues,
}

/// Decodes a text file: UTF-8 (with or without BOM), UTF-16 LE/BE with BOM, else an 8-bit
/// code page: the one `chardetng` finds when it is a non-Latin script (Cyrillic, Greek,
/// Hebrew, Arabic, Thai, CJK), else Windows-1252 (a superset of Latin-1's printable
/// characters). Central European code pages (Windows-1250) are read as Windows-1252.
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom..]);
        return text.into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    let guess = det.guess(None, chardetng::Utf8Detection::Deny);
    // Western European text is the common case and short files fool the detector (a few
    // accented letters read as Central European): Windows-1252 unless the guess is another
    // script altogether.
    let enc = if NON_LATIN.contains(&guess.name()) {
        guess
    } else {
        encoding_rs::WINDOWS_1252
    };
    let (text, _) = enc.decode_without_bom_handling(bytes);
    text.into_owned()
}

/// 8-bit and CJK encodings `chardetng` may find that are not Latin script.
const NON_LATIN: &[&str] = &[
    "windows-1251",
    "KOI8-U",
    "ISO-8859-5",
    "IBM866",
    "windows-1253",
    "ISO-8859-7",
    "windows-1255",
    "ISO-8859-8",
    "ISO-8859-8-I",
    "windows-1256",
    "ISO-8859-6",
    "windows-874",
    "Shift_JIS",
    "EUC-JP",
    "ISO-2022-JP",
    "EUC-KR",
    "GBK",
    "gb18030",
    "Big5",
];

/// Reads a sidecar file's bytes as `format`: cues sorted by start, at most [`MAX_CUES`].
pub fn parse_sidecar(bytes: &[u8], format: SubtitleFormat) -> Result<Vec<Cue>, SubtitleError> {
    if bytes.len() > MAX_SIDECAR_BYTES {
        return Err(SubtitleError::TooLarge(bytes.len()));
    }
    let text = decode_text(bytes);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut cues = match format {
        SubtitleFormat::Srt | SubtitleFormat::WebVtt => parse_timed_blocks(&text),
        SubtitleFormat::Ass => parse_ass(&text),
    };
    if cues.is_empty() {
        return Err(SubtitleError::NoCues);
    }
    cues.sort_by_key(|c| (c.start_ms, c.end_ms));
    Ok(cues)
}

/// Makes a cue from parsed parts, or nothing when it is empty or its times are nonsense.
pub fn make_cue(start_ms: i64, end_ms: i64, text: String) -> Option<Cue> {
    if start_ms < 0 || end_ms <= start_ms || text.trim().is_empty() {
        return None;
    }
    Some(Cue {
        start_ms,
        end_ms: end_ms.min(start_ms.saturating_add(MAX_CUE_MS)),
        text,
    })
}

/// `HH:MM:SS,mmm`, `HH:MM:SS.mmm`, `MM:SS.mmm` (WebVTT) or ASS's `H:MM:SS.cc` → ms.
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (hms, frac) = match s.find([',', '.']) {
        Some(p) => (&s[..p], &s[p + 1..]),
        None => (s, ""),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() > 3 || parts.is_empty() {
        return None;
    }
    let mut secs: i64 = 0;
    for p in &parts {
        if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        secs = secs.checked_mul(60)?.checked_add(p.parse::<i64>().ok()?)?;
    }
    let frac = frac.trim();
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = match frac.len() {
        0 => 0,
        n => {
            let v: i64 = frac.parse().ok()?;
            match n {
                1 => v * 100,
                2 => v * 10,
                3 => v,
                _ => v / 10i64.pow(n as u32 - 3),
            }
        }
    };
    secs.checked_mul(1000)?.checked_add(ms)
}

/// `start --> end[ settings]` → (start, end).
fn parse_timing_line(line: &str) -> Option<(i64, i64)> {
    let (a, b) = line.split_once("-->")?;
    let b = b.split_whitespace().next()?;
    Some((parse_time(a)?, parse_time(b)?))
}

fn push_cue(cues: &mut Vec<Cue>, cue: Option<Cue>) {
    if let Some(c) = cue {
        if cues.len() < MAX_CUES {
            cues.push(c);
        }
    }
}

/// SubRip and WebVTT: blocks of `[index or identifier]`, `start --> end`, text lines.
/// HTML-ish tags (`<i>`, `<b>`, `<u>`, `<font>`; WebVTT voice and class spans, whose text is
/// kept) and ASS override blocks (`{\an8}`) in the text are re-sanitised. WebVTT's
/// NOTE/STYLE/REGION blocks have no timing line, so they are skipped like the header.
fn parse_timed_blocks(text: &str) -> Vec<Cue> {
    let mut cues = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((start, end)) = parse_timing_line(line) else {
            continue;
        };
        let mut body: Vec<&str> = Vec::new();
        while let Some(&l) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            // A missing blank line before the next cue's timing line.
            if parse_timing_line(l).is_some() {
                if let Some(last) = body.last() {
                    if is_index(last) {
                        body.pop();
                    }
                }
                break;
            }
            body.push(l);
            lines.next();
        }
        push_cue(
            &mut cues,
            make_cue(start, end, markup_to_vtt(&body.join("\n"))),
        );
    }
    cues
}

fn is_index(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// ASS/SSA: the `[Events]` section's `Dialogue:` lines, their fields named by its `Format:`.
fn parse_ass(text: &str) -> Vec<Cue> {
    let mut cues = Vec::new();
    let mut in_events = false;
    let mut fields: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.starts_with('[') {
            in_events = line.eq_ignore_ascii_case("[events]");
            continue;
        }
        if !in_events {
            continue;
        }
        if let Some(f) = line.strip_prefix("Format:") {
            fields = f
                .split(',')
                .take(32)
                .map(|s| s.trim().to_ascii_lowercase())
                .collect();
            continue;
        }
        let Some(d) = line.strip_prefix("Dialogue:") else {
            continue;
        };
        if fields.is_empty() {
            fields = [
                "layer", "start", "end", "style", "name", "marginl", "marginr", "marginv",
                "effect", "text",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        }
        let values: Vec<&str> = d.splitn(fields.len(), ',').collect();
        let get = |name: &str| {
            fields
                .iter()
                .position(|f| f == name)
                .and_then(|i| values.get(i))
                .copied()
        };
        let (Some(s), Some(e), Some(t)) = (get("start"), get("end"), get("text")) else {
            continue;
        };
        let (Some(s), Some(e)) = (parse_time(s), parse_time(e)) else {
            continue;
        };
        push_cue(&mut cues, make_cue(s, e, ass_to_vtt(t)));
    }
    cues
}

/// The text of an ASS event as libavcodec's subtitle decoders hand it over
/// (`ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text`), or a whole
/// `Dialogue:` line, as WebVTT payload.
pub fn ass_event_to_vtt(event: &str) -> String {
    let event = event.trim_end_matches(['\r', '\n']);
    let text = match event.strip_prefix("Dialogue:") {
        Some(d) => d.splitn(10, ',').nth(9),
        None => event.splitn(9, ',').nth(8),
    };
    ass_to_vtt(text.unwrap_or(event))
}

#[derive(Default)]
struct Style {
    i: bool,
    b: bool,
    u: bool,
}

/// Writes WebVTT payload: escapes text, keeps `<i>`/`<b>`/`<u>` balanced.
struct VttWriter {
    out: String,
    open: Vec<char>,
    style: Style,
}

impl VttWriter {
    fn new() -> Self {
        Self {
            out: String::new(),
            open: Vec::new(),
            style: Style::default(),
        }
    }

    fn text(&mut self, c: char) {
        if self.out.len() >= MAX_CUE_TEXT {
            return;
        }
        self.sync();
        match c {
            '&' => self.out.push_str("&amp;"),
            '<' => self.out.push_str("&lt;"),
            '>' => self.out.push_str("&gt;"),
            '\n' => {
                // No empty lines in a cue payload (they would end the cue).
                if !self.out.is_empty() && !self.out.ends_with('\n') {
                    self.close_all();
                    self.out.push('\n');
                }
            }
            c if c.is_control() => {}
            c => self.out.push(c),
        }
    }

    /// Opens/closes tags so the open set matches the wanted style.
    fn sync(&mut self) {
        let want = |t: char, s: &Style| match t {
            'i' => s.i,
            'b' => s.b,
            _ => s.u,
        };
        // Close from the innermost until every open tag is wanted.
        while let Some(pos) = self.open.iter().position(|t| !want(*t, &self.style)) {
            while self.open.len() > pos {
                if let Some(t) = self.open.pop() {
                    let _ = write!(self.out, "</{t}>");
                }
            }
        }
        for t in ['i', 'b', 'u'] {
            if want(t, &self.style) && !self.open.contains(&t) {
                let _ = write!(self.out, "<{t}>");
                self.open.push(t);
            }
        }
    }

    fn close_all(&mut self) {
        while let Some(t) = self.open.pop() {
            let _ = write!(self.out, "</{t}>");
        }
    }

    fn finish(mut self) -> String {
        self.close_all();
        // Drop tags that wrap nothing and trailing line breaks.
        let mut out = self.out;
        for t in ["<i></i>", "<b></b>", "<u></u>"] {
            out = out.replace(t, "");
        }
        out.trim_matches('\n').to_owned()
    }
}

/// ASS event text → WebVTT payload: `\N`/`\n` line breaks, `\h` spaces, `{\i1}` `{\b1}`
/// `{\u1}` (and their `0`s, `{\r}`) kept as tags, every other override dropped, drawings
/// (`{\p1}` … `{\p0}`) removed.
pub fn ass_to_vtt(text: &str) -> String {
    let mut w = VttWriter::new();
    let mut drawing = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let mut block = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    if block.len() < 1024 {
                        block.push(c);
                    }
                }
                for tag in block.split('\\').skip(1) {
                    let tag = tag.trim();
                    let flag = |rest: &str| !rest.starts_with('0');
                    if let Some(rest) = tag.strip_prefix('p') {
                        if rest.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                            drawing = flag(rest);
                        }
                    } else if tag.starts_with('r') {
                        w.style = Style::default();
                    } else if let Some(rest) = tag.strip_prefix('i') {
                        if rest.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                            w.style.i = flag(rest);
                        }
                    } else if let Some(rest) = tag.strip_prefix('b') {
                        if rest.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                            // `\b1` or a weight (`\b700`); `\b0`/`\b400` is normal.
                            w.style.b = rest != "400" && flag(rest);
                        }
                    } else if let Some(rest) = tag.strip_prefix('u') {
                        if rest.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                            w.style.u = flag(rest);
                        }
                    }
                }
            }
            '\\' if matches!(chars.peek(), Some('N' | 'n' | 'h')) => {
                let e = chars.next();
                if !drawing {
                    w.text(if e == Some('h') { ' ' } else { '\n' });
                }
            }
            c if drawing => {
                let _ = c;
            }
            c => w.text(c),
        }
    }
    w.finish()
}

/// SubRip/WebVTT cue text → WebVTT payload: `<i>`, `<b>`, `<u>` kept, other tags (`<font>`,
/// voice and class spans, timestamps) dropped with their text kept, ASS override blocks
/// (`{\an8}`) dropped, entities `&amp;` `&lt;` `&gt;` `&nbsp;` understood.
pub fn markup_to_vtt(text: &str) -> String {
    let mut w = VttWriter::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(end) = rest.find('>').filter(|e| *e <= 256) {
                let tag = rest[1..end].trim().to_ascii_lowercase();
                let (closing, name) = match tag.strip_prefix('/') {
                    Some(n) => (true, n.trim()),
                    None => (false, tag.as_str()),
                };
                let name = name.split([' ', '.']).next().unwrap_or("");
                match name {
                    "i" => w.style.i = !closing,
                    "b" => w.style.b = !closing,
                    "u" => w.style.u = !closing,
                    "br" => w.text('\n'),
                    _ => {}
                }
                rest = &rest[end + 1..];
                continue;
            }
        }
        if c == '{' && rest.starts_with("{\\") {
            if let Some(end) = rest.find('}').filter(|e| *e <= 256) {
                rest = &rest[end + 1..];
                continue;
            }
        }
        if c == '&' {
            let ents = [
                ("&amp;", '&'),
                ("&lt;", '<'),
                ("&gt;", '>'),
                ("&nbsp;", ' '),
                ("&lrm;", '\u{200e}'),
                ("&rlm;", '\u{200f}'),
            ];
            if let Some((e, ch)) = ents.iter().find(|(e, _)| rest.starts_with(e)) {
                w.text(*ch);
                rest = &rest[e.len()..];
                continue;
            }
        }
        w.text(c);
        rest = &rest[c.len_utf8()..];
    }
    w.finish()
}

/// `HH:MM:SS.mmm` (hours grow past two digits when needed).
pub fn vtt_time(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// One WebVTT segment covering `[start_ms, end_ms)`: the header with `X-TIMESTAMP-MAP`
/// (local time 0 = MPEG-TS time `mpegts`, 90 kHz), then every cue overlapping the span, with
/// its full times (a cue across a boundary is in every segment it overlaps; players drop
/// the repeats). `cues` sorted by start.
pub fn vtt_segment(cues: &[Cue], start_ms: i64, end_ms: i64, mpegts: u64) -> String {
    let mut out = format!("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000\n");
    for c in cues {
        if c.start_ms >= end_ms {
            break;
        }
        if c.end_ms <= start_ms {
            continue;
        }
        let _ = write!(
            out,
            "\n{} --> {}\n{}\n",
            vtt_time(c.start_ms),
            vtt_time(c.end_ms),
            c.text
        );
    }
    out
}

/// The WebVTT thumbnail index of a thumbnail track: one cue per tile, `[k × interval,
/// (k + 1) × interval)` (the last cut at `total_ms` when known), whose text is
/// `<sheet uri>#xywh=x,y,w,h`. `sheets` are the sheets' URIs and durations in order (a
/// sheet's tile count is its duration / `interval_ms`, at most `columns × rows`).
pub fn thumbnail_vtt(
    grid: &crate::manifest::ThumbnailGrid,
    sheets: &[(String, u32)],
    total_ms: Option<u64>,
) -> String {
    let mut out = String::from("WEBVTT\n");
    let interval = i64::from(grid.interval_ms.max(1));
    let per_sheet = u32::from(grid.columns) * u32::from(grid.rows);
    let (tw, th) = (u32::from(grid.tile_width), u32::from(grid.tile_height));
    let mut k: i64 = 0;
    for (uri, duration_ms) in sheets {
        let tiles = (i64::from(*duration_ms) + interval - 1) / interval;
        let tiles = u32::try_from(tiles.clamp(1, i64::from(per_sheet))).unwrap_or(1);
        for t in 0..tiles {
            let start = k * interval;
            let mut end = start + interval;
            if let Some(total) = total_ms.and_then(|t| i64::try_from(t).ok()) {
                if start >= total {
                    return out;
                }
                end = end.min(total);
            }
            let (x, y) = (
                (t % u32::from(grid.columns.max(1))) * tw,
                (t / u32::from(grid.columns.max(1))) * th,
            );
            let _ = write!(
                out,
                "\n{} --> {}\n{uri}#xywh={x},{y},{tw},{th}\n",
                vtt_time(start),
                vtt_time(end)
            );
            k += 1;
        }
    }
    out
}

/// What a sidecar's file name says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarName {
    /// BCP 47-ish language tag as written (`de`, `eng`, `pt-BR`), if any.
    pub language: Option<String>,
    pub forced: bool,
    /// Hearing impaired (`sdh`, `hi`, `cc`).
    pub hearing_impaired: bool,
}

/// Reads `Movie.de.srt`, `Movie.eng.forced.srt`, `Movie.pt-BR.sdh.srt`, `English.srt`,
/// `2_Spanish.srt`: the dot-separated words after `video_stem` (or all words when the name
/// does not start with it).
pub fn parse_sidecar_name(file_name: &str, video_stem: &str) -> SidecarName {
    let stem = match file_name.rsplit_once('.') {
        Some((s, _ext)) => s,
        None => file_name,
    };
    let rest = if !video_stem.is_empty() && stem.starts_with(video_stem) {
        &stem[video_stem.len()..]
    } else {
        stem
    };
    let mut out = SidecarName::default();
    for word in rest.split(['.', '_', ' ', '[', ']', '(', ')']).rev() {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "" => {}
            "forced" | "foreign" => out.forced = true,
            "sdh" | "hi" | "cc" => out.hearing_impaired = true,
            _ if out.language.is_none() => out.language = language_tag(word),
            _ => {}
        }
    }
    out
}

/// A language code or English language name → a tag (`de`, `eng`, `pt-BR`, `es`).
fn language_tag(word: &str) -> Option<String> {
    let names = [
        ("english", "en"),
        ("german", "de"),
        ("deutsch", "de"),
        ("french", "fr"),
        ("francais", "fr"),
        ("spanish", "es"),
        ("espanol", "es"),
        ("italian", "it"),
        ("portuguese", "pt"),
        ("dutch", "nl"),
        ("russian", "ru"),
        ("japanese", "ja"),
        ("chinese", "zh"),
        ("korean", "ko"),
        ("polish", "pl"),
        ("swedish", "sv"),
        ("danish", "da"),
        ("norwegian", "no"),
        ("finnish", "fi"),
        ("turkish", "tr"),
        ("greek", "el"),
        ("arabic", "ar"),
        ("hebrew", "he"),
        ("czech", "cs"),
        ("hungarian", "hu"),
    ];
    let lower = word.to_ascii_lowercase();
    if let Some((_, code)) = names.iter().find(|(n, _)| *n == lower) {
        return Some((*code).to_owned());
    }
    let (primary, region) = match word.split_once('-') {
        Some((p, r)) => (p, Some(r)),
        None => (word, None),
    };
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
    let region_ok = region.is_none_or(|r| {
        (r.len() == 2 && r.bytes().all(|b| b.is_ascii_alphabetic()))
            || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
            || ((4..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()))
    });
    if !primary_ok || !region_ok {
        return None;
    }
    let mut tag = primary.to_ascii_lowercase();
    if let Some(r) = region {
        tag.push('-');
        if r.len() == 2 {
            tag.push_str(&r.to_ascii_uppercase());
        } else {
            tag.push_str(r);
        }
    }
    Some(tag)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn srt_with_tags_and_missing_blank_lines() {
        let srt = "1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> & <font color=\"red\">you</font>\r\n{\\an8}second line\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nA\r\n3\r\n00:00:05,000 --> 00:00:06,000\r\nB\r\n";
        let cues = parse_sidecar(srt.as_bytes(), SubtitleFormat::Srt).unwrap();
        assert_eq!(cues.len(), 3);
        assert_eq!(cues[0].start_ms, 1000);
        assert_eq!(cues[0].end_ms, 2500);
        assert_eq!(cues[0].text, "<i>Hello</i> &amp; you\nsecond line");
        assert_eq!(cues[1].text, "A");
        assert_eq!(cues[2].start_ms, 5000);
    }

    #[test]
    fn vtt_cues_and_notes() {
        let vtt = "WEBVTT\n\nNOTE a note\n\nid1\n00:01.000 --> 00:02.000 align:start\n<v Bob>Hi <b>there</b></v>\n\n01:00:00.000 --> 01:00:01.000\nLate\n";
        let cues = parse_sidecar(vtt.as_bytes(), SubtitleFormat::WebVtt).unwrap();
        assert_eq!(cues.len(), 2);
        assert_eq!(
            cues[0],
            Cue {
                start_ms: 1000,
                end_ms: 2000,
                text: "Hi <b>there</b>".into()
            }
        );
        assert_eq!(cues[1].start_ms, 3_600_000);
    }

    #[test]
    fn ass_events_with_overrides_and_drawings() {
        let ass = "[Script Info]\nTitle: x\n\n[V4+ Styles]\nFormat: Name, Fontname\nStyle: Default,Arial\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\nDialogue: 0,0:00:01.50,0:00:03.00,Default,,0,0,0,,{\\i1\\pos(10,20)}Bonjour,{\\i0} le\\Nmonde{\\p1}m 0 0 l 100 0{\\p0}!\nComment: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,hidden\nDialogue: 0,0:00:04.00,0:00:05.00,Default,,0,0,0,,{\\b1}gras{\\r}\\hnormal\n";
        let cues = parse_sidecar(ass.as_bytes(), SubtitleFormat::Ass).unwrap();
        assert_eq!(cues.len(), 2);
        assert_eq!(cues[0].start_ms, 1500);
        assert_eq!(cues[0].end_ms, 3000);
        assert_eq!(cues[0].text, "<i>Bonjour,</i> le\nmonde!");
        assert_eq!(cues[1].text, "<b>gras</b> normal");
    }

    #[test]
    fn libavcodec_ass_event_layout() {
        assert_eq!(
            ass_event_to_vtt("0,0,Default,,0,0,0,,{\\i1}Hello{\\i0}, world\\Nline 2"),
            "<i>Hello</i>, world\nline 2"
        );
        assert_eq!(ass_event_to_vtt("3,0,Default,,0,0,0,,a < b"), "a &lt; b");
    }

    #[test]
    fn encodings() {
        // Latin-1 / Windows-1252.
        let latin1 = b"1\n00:00:01,000 --> 00:00:02,000\nEl ni\xf1o est\xe1 aqu\xed, se\xf1or.\n";
        let cues = parse_sidecar(latin1, SubtitleFormat::Srt).unwrap();
        assert_eq!(cues[0].text, "El niño está aquí, señor.");
        let short = b"1\n00:00:01,000 --> 00:00:02,000\nEl ni\xf1o est\xe1 aqu\xed\n";
        assert_eq!(
            parse_sidecar(short, SubtitleFormat::Srt).unwrap()[0].text,
            "El niño está aquí"
        );
        // Windows-1251 Russian.
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode(
            "1\n00:00:01,000 --> 00:00:02,000\nПривет, как дела? Это субтитры на русском языке.\n",
        );
        assert_eq!(
            parse_sidecar(&cp1251, SubtitleFormat::Srt).unwrap()[0].text,
            "Привет, как дела? Это субтитры на русском языке."
        );
        // UTF-8 with BOM.
        let mut u8bom = vec![0xef, 0xbb, 0xbf];
        u8bom.extend_from_slice("1\n00:00:01,000 --> 00:00:02,000\nÜber\n".as_bytes());
        assert_eq!(
            parse_sidecar(&u8bom, SubtitleFormat::Srt).unwrap()[0].text,
            "Über"
        );
        // UTF-16 LE and BE with BOM.
        let s = "1\n00:00:01,000 --> 00:00:02,000\nПривет\n";
        let mut le = vec![0xff, 0xfe];
        let mut be = vec![0xfe, 0xff];
        for u in s.encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
            be.extend_from_slice(&u.to_be_bytes());
        }
        assert_eq!(
            parse_sidecar(&le, SubtitleFormat::Srt).unwrap()[0].text,
            "Привет"
        );
        assert_eq!(
            parse_sidecar(&be, SubtitleFormat::Srt).unwrap()[0].text,
            "Привет"
        );
    }

    #[test]
    fn limits_and_garbage() {
        assert_eq!(
            parse_sidecar(&vec![b'a'; MAX_SIDECAR_BYTES + 1], SubtitleFormat::Srt),
            Err(SubtitleError::TooLarge(MAX_SIDECAR_BYTES + 1))
        );
        assert_eq!(
            parse_sidecar(b"\x00\xff garbage -->", SubtitleFormat::Srt),
            Err(SubtitleError::NoCues)
        );
        // Backwards and absurd times are dropped, huge durations cut.
        let srt = "00:00:05,000 --> 00:00:01,000\nx\n\n99999999:00:00,000 --> 99999999:00:01,000\ny\n\n00:00:00,000 --> 10:00:00,000\nz\n";
        let cues = parse_sidecar(srt.as_bytes(), SubtitleFormat::Srt).unwrap();
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].end_ms, MAX_CUE_MS);
        // Cue text is bounded.
        let long = format!("00:00:00,000 --> 00:00:01,000\n{}\n", "é".repeat(10_000));
        let cues = parse_sidecar(long.as_bytes(), SubtitleFormat::Srt).unwrap();
        assert!(cues[0].text.len() <= MAX_CUE_TEXT + 8);
    }

    #[test]
    fn segments_repeat_cues_across_boundaries() {
        let cues = vec![
            Cue {
                start_ms: 1000,
                end_ms: 2000,
                text: "a".into(),
            },
            Cue {
                start_ms: 3500,
                end_ms: 4500,
                text: "b".into(),
            },
            Cue {
                start_ms: 9000,
                end_ms: 9500,
                text: "c".into(),
            },
        ];
        let s0 = vtt_segment(&cues, 0, 4000, 90_000);
        assert_eq!(
            s0,
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:90000,LOCAL:00:00:00.000\n\n00:00:01.000 --> 00:00:02.000\na\n\n00:00:03.500 --> 00:00:04.500\nb\n"
        );
        let s1 = vtt_segment(&cues, 4000, 8000, 90_000);
        assert!(s1.contains("00:00:03.500 --> 00:00:04.500\nb\n"));
        assert!(!s1.contains("\na\n") && !s1.contains("\nc\n"));
        let s2 = vtt_segment(&cues, 8000, 12000, 90_000);
        assert!(s2.ends_with("00:00:09.000 --> 00:00:09.500\nc\n"));
        assert_eq!(vtt_time(3_600_000 * 100 + 1), "100:00:00.001");
    }

    #[test]
    fn thumbnail_index() {
        let grid = crate::manifest::ThumbnailGrid {
            interval_ms: 2000,
            tile_width: 64,
            tile_height: 36,
            columns: 3,
            rows: 2,
        };
        let vtt = thumbnail_vtt(
            &grid,
            &[("a.jpg".into(), 12_000), ("b.jpg".into(), 2_000)],
            Some(13_040),
        );
        let cues: Vec<&str> = vtt.split("\n\n").skip(1).collect();
        assert_eq!(cues.len(), 7);
        assert_eq!(
            cues[0],
            "00:00:00.000 --> 00:00:02.000\na.jpg#xywh=0,0,64,36"
        );
        assert_eq!(
            cues[4],
            "00:00:08.000 --> 00:00:10.000\na.jpg#xywh=64,36,64,36"
        );
        assert_eq!(
            cues[6],
            "00:00:12.000 --> 00:00:13.040\nb.jpg#xywh=0,0,64,36\n"
        );
    }

    #[test]
    fn sidecar_names() {
        let n = parse_sidecar_name("Movie.de.srt", "Movie");
        assert_eq!(n.language.as_deref(), Some("de"));
        assert!(!n.forced);
        let n = parse_sidecar_name("Movie.eng.forced.srt", "Movie");
        assert_eq!(n.language.as_deref(), Some("eng"));
        assert!(n.forced);
        let n = parse_sidecar_name("Movie.pt-br.sdh.srt", "Movie");
        assert_eq!(n.language.as_deref(), Some("pt-BR"));
        assert!(n.hearing_impaired);
        assert_eq!(
            parse_sidecar_name("2_English.srt", "Movie")
                .language
                .as_deref(),
            Some("en")
        );
        assert_eq!(parse_sidecar_name("Movie.srt", "Movie").language, None);
        assert_eq!(
            parse_sidecar_name("Movie.2019.1080p.srt", "Movie").language,
            None
        );
    }
}
