//! Ingest: a local file, a `.torrent` or a magnet link streamed into the FFmpeg transcoder,
//! whose segments are stored and published in a growing signed manifest while it runs.
//!
//! - `torrent`: librqbit session exposing the torrent's video file as a loopback HTTP URL
//!   with Range support, so FFmpeg reads it in playback order while it downloads.
//! - `transcode`: ffmpeg-next, decode once → ABR ladder → fMP4/TS segments, as events.
//! - `meta`: the movie fields an ingest names (flags, admin JSON, sidecar file), image
//!   checks, and their resolution into the manifest's `MovieMeta`.
//! - `job`: one ingest end to end; `manager`: the job table; `progress`: how it is shown.

pub mod job;
pub mod manager;
pub mod meta;
pub mod progress;
pub mod sidecar;
pub mod torrent;
pub mod transcode;

use crate::config::{ContainerName, IngestConfig};

/// The transcoder's ladder from the node's `[ingest]` config.
pub fn ladder_from_config(c: &IngestConfig) -> transcode::LadderConfig {
    transcode::LadderConfig {
        rungs: c
            .rungs
            .iter()
            .map(|r| transcode::Rung {
                name: r.name.clone(),
                height: r.height,
                video_bitrate: r.video_bitrate,
                audio_bitrate: r.audio_bitrate,
            })
            .collect(),
        segment_secs: c.segment_secs,
        container: match c.container {
            ContainerName::Fmp4 => reelnet_proto::Container::Fmp4,
            ContainerName::Mpegts => reelnet_proto::Container::MpegTs,
        },
        preset: c.preset.clone(),
    }
}
