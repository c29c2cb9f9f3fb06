//! Transcodes one input with the default ladder (or `--ts`, `--preset P`, `--segment S`,
//! `--rungs 1080,720` to keep only those heights of the default ladder) through
//! `reelnet_node::ingest::transcode`, discards the segments, and prints frames, elapsed time
//! and speed relative to realtime, for comparison with the `ffmpeg` CLI.
//!
//! With `--full` it also makes what a node's ingest makes besides the ladder, as the ingest
//! job does: a WebVTT track per text subtitle stream and per sidecar subtitle file beside the
//! input (`Movie.es.srt`), and the seek-thumbnail sprite sheets (default thumbnail settings).
//!
//! `cargo run --release -p reelnet-node --example transcode_bench -- INPUT [--ts] [--preset veryfast] [--rungs 1080] [--full]`

use std::sync::atomic::AtomicBool;

use reelnet_node::ingest::sidecar;
use reelnet_node::ingest::transcode::{
    self, Extras, LadderConfig, ThumbnailConfig, TranscodeEvent,
};
use reelnet_proto::Container;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut input = None;
    let mut config = LadderConfig::default();
    let mut full = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ts" => config.container = Container::MpegTs,
            "--full" => full = true,
            "--preset" => config.preset = args.next().ok_or("--preset needs a value")?,
            "--segment" => {
                config.segment_secs = args.next().ok_or("--segment needs a value")?.parse()?
            }
            "--rungs" | "--heights" => {
                let keep = args
                    .next()
                    .ok_or("--rungs needs a value")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<u32>, _>>()?;
                config.rungs.retain(|r| keep.contains(&r.height));
                if config.rungs.is_empty() {
                    return Err("--rungs keeps no rung of the default ladder".into());
                }
            }
            _ if input.is_none() => input = Some(a),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let input = input
        .ok_or("usage: transcode_bench INPUT [--ts] [--preset P] [--segment S] [--rungs H,H..]")?;
    let plan = transcode::probe(&input, &config)?;
    for (r, remux) in plan.renditions.iter().zip(&plan.remux) {
        println!(
            "track {} {}",
            r.name,
            if *remux { "copy" } else { "encode" }
        );
        eprintln!(
            "{}: {}x{} {} {} b/s{}",
            r.name,
            r.width,
            r.height,
            r.codecs,
            r.bandwidth,
            if *remux { " (remux)" } else { "" }
        );
    }
    let started = std::time::Instant::now();
    let extras = if full {
        // What the ingest job does before it transcodes (node/src/ingest/job.rs, extras_for).
        let probe = transcode::probe_subtitles(&input)?;
        let mut subtitles = probe.tracks;
        let taken: Vec<String> = subtitles.iter().map(|t| t.name.clone()).collect();
        let path = std::path::Path::new(&input);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        subtitles.extend(sidecar::load_sidecars(
            &sidecar::find_sidecars(path),
            &stem,
            &taken,
        ));
        subtitles.truncate(transcode::MAX_SUBTITLE_TRACKS);
        let thumbnails = plan
            .renditions
            .iter()
            .find(|r| !r.is_audio_only())
            .and_then(|top| {
                transcode::ThumbnailLayout::for_video(
                    &ThumbnailConfig::default(),
                    top.width,
                    top.height,
                )
            });
        for t in &subtitles {
            eprintln!(
                "{}: subtitles, language {:?}, from {}",
                t.name,
                t.language,
                match &t.origin {
                    transcode::SubtitleOrigin::Stream { .. } => "a stream",
                    _ => "a sidecar file",
                }
            );
        }
        for u in &probe.unsupported {
            eprintln!("not supported: {u}");
        }
        Extras {
            subtitles,
            thumbnails,
        }
    } else {
        Extras::default()
    };
    let cancel = AtomicBool::new(false);
    let mut bytes = 0u64;
    let mut first_segment_s = None;
    let mut per_track: Vec<u32> = Vec::new();
    let summary = transcode::transcode_with(&input, &config, &plan, &extras, &cancel, &mut |ev| {
        match ev {
            TranscodeEvent::Segment {
                track, bytes: b, ..
            } => {
                bytes += b.len() as u64;
                if per_track.len() <= track {
                    per_track.resize(track + 1, 0);
                }
                per_track[track] += 1;
                first_segment_s.get_or_insert(started.elapsed().as_secs_f64());
            }
            TranscodeEvent::Init { bytes: b, .. } => {
                bytes += b.len() as u64;
                first_segment_s.get_or_insert(started.elapsed().as_secs_f64());
            }
            TranscodeEvent::Progress { .. } => {}
        }
        Ok(())
    })?;
    let speed = summary.duration_s / summary.elapsed_s.max(1e-9);
    println!(
        "remux {}",
        plan.remux.iter().filter(|r| **r).count() == plan.remux.len()
    );
    println!("frames {}", summary.frames);
    println!("media_s {:.3}", summary.duration_s);
    println!("elapsed_s {:.3}", summary.elapsed_s);
    println!("speed_x {speed:.2}");
    println!(
        "fps {:.1}",
        summary.frames as f64 / summary.elapsed_s.max(1e-9)
    );
    println!("first_segment_s {:.3}", first_segment_s.unwrap_or(f64::NAN));
    println!("segments {per_track:?}");
    println!("total_s {:.3}", started.elapsed().as_secs_f64());
    println!("bytes {bytes}");
    Ok(())
}
