//! Verified streaming of segments to viewers (issue 19 items 1 and 3), over real parts: the
//! warp gateway on 127.0.0.1 reached over HTTP, its store on disk, and QUIC segment
//! providers on loopback (real servers, and scripted ones that corrupt or hold back bytes).
//! A viewer never receives a byte of a chunk group that failed its check: a bad group from a
//! peer or on disk aborts the response mid-body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_gateway;

use std::time::{Duration, Instant};

use common_gateway::*;
use reelnet_proto::outboard::GROUP_LEN;
use reelnet_proto::MovieId;

/// Media segments of about 2 MB (video) and 60 kB (audio-sized), like real HLS segments.
fn big_library(seed: u64) -> Library {
    Library::sized(seed, MovieId::from_tmdb(603), true, 2, [2_000_000, 60_000])
}

/// A counter's value in the gateway's `/metrics` text (0 when absent).
async fn metric(gw: &Gateway, name: &str) -> u64 {
    let text = gw.metrics().await;
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            rest.strip_prefix(' ')?.trim().parse::<f64>().ok()
        })
        .map_or(0, |v| v as u64)
}

/// Polls `cond` until it holds, failing after a deadline.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads a response body chunk by chunk: what arrived, and whether it ended with an error.
async fn read_body(mut res: reqwest::Response) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => return (got, false),
            Err(_) => return (got, true),
        }
    }
}

/// A provider seed other than the one whose node id is `after` (its id sorts after it).
fn seed_after(after: reelnet_proto::NodeId) -> u8 {
    (14..=255u8).find(|s| Provider::id_of(*s) > after).unwrap()
}

#[tokio::test]
async fn a_peer_held_segment_streams_byte_identical_and_fills_the_caches() {
    let lib = big_library(41);
    let gw = Gateway::start().await;
    let peer = Provider::holding(12, &lib);
    // The provider stored the segments with their outboards beside them.
    let (hash, url) = gw.media_url(&lib, 0, 0, &gw.token(&lib.manifest.movie));
    assert!(peer.store.outboard_path(&hash).is_file());
    gw.announce(&peer, &lib, 1).await;

    let res = gw.get(&url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-length"],
        lib.bytes[&hash].len().to_string().as_str()
    );
    let (body, failed) = read_body(res).await;
    assert!(!failed);
    assert_eq!(body, lib.bytes[&hash]);
    assert_eq!(metric(&gw, "reelnet_peer_fetches_started").await, 1);
    // The store keeps the fetched segment, outboard included.
    eventually("the fetched segment in the store", || async {
        gw.store.has_segment(&hash) && gw.store.outboard_path(&hash).is_file()
    })
    .await;
    // Served again from the hot cache: no new fetch even with the provider gone.
    peer.server.shutdown();
    let res = gw.get(&url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        lib.bytes[&hash].as_slice()
    );
    assert_eq!(metric(&gw, "reelnet_peer_fetches_started").await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_corrupt_chunk_from_a_peer_aborts_the_response_before_its_bytes() {
    let lib = big_library(42);
    let gw = Gateway::start().await;
    // A bit flipped in the sixth chunk group: the first five pass and may reach the viewer.
    let bad_at = 5 * GROUP_LEN + 1234;
    let evil = Provider::evil(12, &lib, Evil::CorruptAt(bad_at));
    let good = Provider::holding(seed_after(evil.id()), &lib);
    // Only the evil one holds the segment at first (the gateway spreads its first asks over
    // the holders, so with both announced it could pick the good one).
    gw.announce(&evil, &lib, 1).await;
    let (hash, url) = gw.media_url(&lib, 0, 0, &gw.token(&lib.manifest.movie));
    let real = &lib.bytes[&hash];

    let res = gw.get(&url).await;
    assert_eq!(
        res.status(),
        200,
        "the first groups verified, so the answer started"
    );
    let (got, failed) = read_body(res).await;
    assert!(failed, "the response must fail, not end cleanly");
    assert!(
        got.len() <= bad_at - bad_at % GROUP_LEN,
        "the viewer got {} bytes: past the start of the bad group",
        got.len()
    );
    assert_eq!(got.as_slice(), &real[..got.len()], "only verified bytes");
    assert_eq!(metric(&gw, "reelnet_peer_bad_chunks").await, 1);
    assert!(!gw.store.has_segment(&hash));
    // The bad source was dropped: the next request succeeds from the good one.
    gw.announce(&good, &lib, 1).await;
    let res = gw.get(&url).await;
    assert_eq!(res.status(), 200);
    let (got, failed) = read_body(res).await;
    assert!(!failed);
    assert_eq!(&got, real);
    assert!(gw.fetcher.stats(&good.id()).unwrap().successes >= 1);
    gw.stop().await;
}

#[tokio::test]
async fn concurrent_viewers_of_one_segment_share_one_peer_fetch() {
    let lib = big_library(43);
    let gw = Gateway::start().await;
    let gate: &'static tokio::sync::Notify = Box::leak(Box::new(tokio::sync::Notify::new()));
    let slow = Provider::evil(12, &lib, Evil::Gated(gate));
    gw.announce(&slow, &lib, 1).await;
    let (hash, url) = gw.media_url(&lib, 0, 1, &gw.token(&lib.manifest.movie));
    let real = &lib.bytes[&hash];

    // The first viewer gets the verified first half while the rest is held back.
    let mut first = gw.get(&url).await;
    assert_eq!(first.status(), 200);
    let head = first.chunk().await.unwrap().unwrap();
    assert_eq!(&head[..], &real[..head.len()]);
    // The second viewer joins the fetch in flight.
    let second = gw.get(&url).await;
    assert_eq!(second.status(), 200);
    assert_eq!(metric(&gw, "reelnet_fetches_coalesced").await, 1);
    gate.notify_one();
    let (rest, failed) = read_body(first).await;
    assert!(!failed);
    assert_eq!([&head[..], &rest[..]].concat(), *real);
    let (all, failed) = read_body(second).await;
    assert!(!failed);
    assert_eq!(&all, real);
    assert_eq!(metric(&gw, "reelnet_peer_fetches_started").await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_flipped_bit_on_disk_aborts_the_read_and_drops_the_file() {
    let lib = big_library(44);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let (hash, url) = gw.media_url(&lib, 0, 0, &gw.token(&lib.manifest.movie));
    let real = &lib.bytes[&hash];
    // Rot at rest, past the first read block so the response has started.
    let bad_at = 1_000_000;
    let path = gw.store.segment_path(&hash);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[bad_at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let res = gw.get(&url).await;
    assert_eq!(res.status(), 200);
    let (got, failed) = read_body(res).await;
    assert!(failed, "the response must fail, not end cleanly");
    assert!(got.len() <= bad_at - bad_at % GROUP_LEN);
    assert_eq!(got.as_slice(), &real[..got.len()]);
    assert_eq!(metric(&gw, "reelnet_segments_corrupt_at_rest").await, 1);
    assert!(!gw.store.has_segment(&hash));
    assert!(!path.exists() && !gw.store.outboard_path(&hash).exists());
    // Nothing else holds it now.
    assert_eq!(gw.get(&url).await.status(), 502);
    // The other segment is untouched and served.
    let (hash1, url1) = gw.media_url(&lib, 0, 1, &gw.token(&lib.manifest.movie));
    let res = gw.get(&url1).await;
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        lib.bytes[&hash1].as_slice()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_missing_outboard_is_rebuilt_on_read() {
    let lib = big_library(45);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let (hash, url) = gw.media_url(&lib, 0, 0, &gw.token(&lib.manifest.movie));
    let outboard = gw.store.outboard_path(&hash);
    let written = std::fs::read(&outboard).unwrap();
    // A store from before outboards: the file is not there.
    std::fs::remove_file(&outboard).unwrap();

    let res = gw.get(&url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        lib.bytes[&hash].as_slice()
    );
    assert_eq!(std::fs::read(&outboard).unwrap(), written);
    // A damaged outboard is rebuilt the same way (the segment itself is fine).
    let mut damaged = written.clone();
    damaged[7] ^= 1;
    std::fs::write(&outboard, &damaged).unwrap();
    let (hash1, _) = gw.media_url(&lib, 0, 0, "");
    assert_eq!(hash1, hash);
    let mut reader = gw.store.open_verified(&hash).unwrap().unwrap();
    assert!(reader.rebuilt());
    let mut all = Vec::new();
    while let Some(block) = reader.next_block().unwrap() {
        all.extend_from_slice(&block);
    }
    assert_eq!(&all, &lib.bytes[&hash]);
    assert_eq!(std::fs::read(&outboard).unwrap(), written);
    gw.stop().await;
}
