//! Ingest: a local file, a `.torrent` or a magnet link streamed into the FFmpeg transcoder,
//! whose segments are stored and published in a growing signed manifest while it runs.
//!
//! - `torrent`: librqbit session exposing the torrent's video file as a loopback HTTP URL
//!   with Range support, so FFmpeg reads it in playback order while it downloads.
//! - `transcode`: ffmpeg-next, decode once → ABR ladder → fMP4/TS segments, as events.

pub mod torrent;
pub mod transcode;
