//! Transcodes one input with the default ladder (or `--ts`, `--preset P`, `--segment S`,
//! `--rungs 1080,720` to keep only those heights of the default ladder) through
//! `reelnet_node::ingest::transcode`, discards the segments, and prints frames, elapsed time
//! and speed relative to realtime, for comparison with the `ffmpeg` CLI.
//!
//! `cargo run --release -p reelnet-node --example transcode_bench -- INPUT [--ts] [--preset veryfast] [--rungs 1080]`

use std::sync::atomic::AtomicBool;

use reelnet_node::ingest::transcode::{self, LadderConfig, TranscodeEvent};
use reelnet_proto::Container;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut input = None;
    let mut config = LadderConfig::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ts" => config.container = Container::MpegTs,
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
    let cancel = AtomicBool::new(false);
    let mut bytes = 0u64;
    let mut first_segment_s = None;
    let started = std::time::Instant::now();
    let summary = transcode::transcode(&input, &config, &plan, &cancel, &mut |ev| {
        match ev {
            TranscodeEvent::Segment { bytes: b, .. } | TranscodeEvent::Init { bytes: b, .. } => {
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
    println!("segments {:?}", summary.segments_per_track);
    println!("bytes {bytes}");
    Ok(())
}
