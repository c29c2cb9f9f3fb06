//! Sidecar subtitle files: `.srt`, `.vtt`, `.ass`, `.ssa` files beside a local source file
//! (`Movie.mkv` → `Movie.de.srt`, `Movie.eng.forced.srt`, `Movie.pt-BR.srt`, and any
//! subtitle file in a `Subs`/`Subtitles` folder next to it) or in the torrent (see
//! `TorrentInput::read_sidecars`), read (at most
//! [`MAX_SIDECAR_BYTES`] each, [`MAX_SIDECARS`] files), decoded from whatever encoding they
//! are in and parsed by `reelnet_proto::subtitles`. A file that cannot be read or holds no
//! cue is skipped with a warning: sidecars never fail an ingest.

use std::path::{Path, PathBuf};

use reelnet_proto::subtitles::{
    parse_sidecar, parse_sidecar_name, SubtitleFormat, MAX_SIDECAR_BYTES,
};

use super::transcode::{subtitle_name, SubtitleOrigin, SubtitleTrack};

/// Most sidecar files used per movie.
pub const MAX_SIDECARS: usize = 12;

/// The subtitle files that belong to `video` (sorted by name), at most [`MAX_SIDECARS`].
pub fn find_sidecars(video: &Path) -> Vec<PathBuf> {
    let Some(dir) = video.parent() else {
        return Vec::new();
    };
    // `Movie.mkv` (a bare file name) lives in the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    let is_sub = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(SubtitleFormat::from_extension)
            .is_some()
    };
    let mut scan = |dir: &Path, need_stem: bool| {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten().take(10_000) {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if !p.is_file() || !is_sub(&p) {
                continue;
            }
            if need_stem && !name.starts_with(&stem) {
                continue;
            }
            out.push(p);
        }
    };
    scan(dir, true);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten().take(10_000) {
            let name = e.file_name().to_string_lossy().to_ascii_lowercase();
            if e.path().is_dir() && matches!(name.as_str(), "subs" | "subtitles" | "sub") {
                scan(&e.path(), false);
            }
        }
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_SIDECARS);
    out
}

/// Reads the sidecar files (skipping the unreadable ones with a warning): (name, bytes).
pub fn read_sidecars(files: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            match read_bounded(path) {
                Ok(b) => Some((name, b)),
                Err(e) => {
                    tracing::warn!(file = name, "sidecar subtitles skipped: {e}");
                    None
                }
            }
        })
        .collect()
}

/// Reads and parses the sidecars: one subtitle track each (named after `taken`, the stream
/// subtitles' names), skipping the ones that do not parse.
pub fn load_sidecars(files: &[PathBuf], video_stem: &str, taken: &[String]) -> Vec<SubtitleTrack> {
    parse_sidecars(&read_sidecars(files), video_stem, taken)
}

/// Parses sidecar files' bytes (`name` is a file name or a path inside a torrent): one
/// subtitle track each, named after `taken`; the ones that do not parse are skipped.
pub fn parse_sidecars(
    files: &[(String, Vec<u8>)],
    video_stem: &str,
    taken: &[String],
) -> Vec<SubtitleTrack> {
    let mut names: Vec<String> = taken.to_vec();
    let mut out = Vec::new();
    for (path, bytes) in files {
        let file = path.rsplit('/').next().unwrap_or(path).to_owned();
        let Some(format) = Path::new(&file)
            .extension()
            .and_then(|e| e.to_str())
            .and_then(SubtitleFormat::from_extension)
        else {
            continue;
        };
        let cues = match parse_sidecar(bytes, format) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(file, "sidecar subtitles skipped: {e}");
                continue;
            }
        };
        let n = parse_sidecar_name(&file, video_stem);
        let language = n
            .language
            .as_deref()
            .and_then(reelnet_proto::lang::normalize);
        let name = subtitle_name(language.as_deref(), n.forced, &names);
        names.push(name.clone());
        tracing::info!(file, language = ?language, cues = cues.len(), "sidecar subtitles");
        out.push(SubtitleTrack {
            name,
            language,
            title: None,
            forced: n.forced,
            default: false,
            hearing_impaired: n.hearing_impaired,
            origin: SubtitleOrigin::Sidecar { file, cues },
        });
    }
    out
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(MAX_SIDECAR_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_SIDECAR_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_SIDECAR_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_loads_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("Movie.mkv");
        std::fs::write(&video, b"x").unwrap();
        let cue = b"1\n00:00:01,000 --> 00:00:02,000\nHola se\xf1or\n";
        std::fs::write(dir.path().join("Movie.es.srt"), cue).unwrap();
        std::fs::write(dir.path().join("Movie.eng.forced.srt"), cue).unwrap();
        std::fs::write(dir.path().join("Other.de.srt"), cue).unwrap();
        std::fs::write(dir.path().join("Movie.nfo"), b"x").unwrap();
        std::fs::write(dir.path().join("Movie.fr.srt"), b"garbage").unwrap();
        std::fs::create_dir(dir.path().join("Subs")).unwrap();
        std::fs::write(dir.path().join("Subs/2_English.srt"), cue).unwrap();
        let files = find_sidecars(&video);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "Movie.eng.forced.srt",
                "Movie.es.srt",
                "Movie.fr.srt",
                "2_English.srt"
            ]
        );
        let tracks = load_sidecars(&files, "Movie", &["subs-en".to_owned()]);
        let summary: Vec<_> = tracks
            .iter()
            .map(|t| (t.name.as_str(), t.language.as_deref(), t.forced))
            .collect();
        assert_eq!(
            summary,
            [
                ("subs-en-forced", Some("en"), true),
                ("subs-es", Some("es"), false),
                ("subs-en-2", Some("en"), false),
            ]
        );
        let SubtitleOrigin::Sidecar { cues, .. } = &tracks[1].origin else {
            panic!("not a sidecar");
        };
        assert_eq!(cues[0].text, "Hola señor");
    }
}
