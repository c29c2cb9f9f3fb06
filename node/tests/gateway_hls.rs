//! The gateway's `/hls` routes over real parts: the catalog actor, the segment store, the
//! QUIC fetcher against real QUIC segment servers on loopback, and the warp gateway served
//! on 127.0.0.1 and reached over HTTP. Manifests are written directly (signed with real
//! keys) so the tests control exactly what each node holds and when a manifest grows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common_gateway;

use common_gateway::*;
use reelnet_proto::MovieId;

#[tokio::test]
async fn local_playlists_and_segments_with_ranges_and_cors() {
    let lib = Library::new(1, true, 4);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let token = gw.token(&lib.manifest.movie);
    let base = format!("{}/hls/{}", gw.url, lib.manifest.movie);

    let master = gw
        .get_with(
            &format!("{base}/master.m3u8?token={token}"),
            &[("origin", "http://example.test")],
        )
        .await;
    assert_eq!(master.status(), 200);
    assert_eq!(
        master.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(
        master.headers()["access-control-allow-origin"],
        "http://example.test"
    );
    let text = master.text().await.unwrap();
    assert!(text.starts_with("#EXTM3U"), "{text}");
    let variants: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(variants.len(), 2, "{text}");
    assert!(variants
        .iter()
        .all(|v| v.ends_with(&format!("?token={token}"))));

    let variant_url = format!("{base}/{}", variants[0]);
    let playlist = gw.get(&variant_url).await;
    assert_eq!(playlist.status(), 200);
    let text = playlist.text().await.unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.contains("#EXT-X-ENDLIST"));
    let dir = variant_url.rsplit_once('/').unwrap().0;
    let segments = segment_uris(&text);
    assert_eq!(segments.len(), 5, "init + 4 media: {text}");
    for uri in &segments {
        let res = gw.get(&format!("{dir}/{uri}")).await;
        assert_eq!(res.status(), 200, "{uri}");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct == "video/mp4" || ct == "video/iso.segment", "{ct}");
        let hash = uri.split('.').next().unwrap();
        let body = res.bytes().await.unwrap();
        assert_eq!(reelnet_proto::SegmentHash::of(&body).to_string(), hash);
    }

    // Byte ranges.
    let seg_url = format!("{dir}/{}", segments[1]);
    let whole = gw.get(&seg_url).await.bytes().await.unwrap();
    let part = gw.get_with(&seg_url, &[("range", "bytes=10-19")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{}", whole.len())
    );
    assert_eq!(part.bytes().await.unwrap(), whole.slice(10..20));
    let tail = gw.get_with(&seg_url, &[("range", "bytes=-5")]).await;
    assert_eq!(tail.bytes().await.unwrap(), whole.slice(whole.len() - 5..));
    let bad = gw
        .get_with(&seg_url, &[("range", &format!("bytes={}-", whole.len()))])
        .await;
    assert_eq!(bad.status(), 416);
    assert_eq!(
        bad.headers()["content-range"],
        format!("bytes */{}", whole.len())
    );

    // CORS preflight for a range request from another origin.
    let pre = gw
        .client
        .request(reqwest::Method::OPTIONS, &seg_url)
        .header("origin", "http://example.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "http://example.test"
    );

    let metrics = gw.metrics().await;
    assert!(metrics.contains("reelnet_segments_served_total{source=\"local\"}"));
    assert!(metrics.contains("reelnet_segments_served_total{source=\"peer\"} 0\n"));
    gw.stop().await;
}

#[tokio::test]
async fn segments_held_only_by_a_peer_are_fetched_verified_shared_and_cached() {
    let lib = Library::new(2, true, 3);
    let gw = Gateway::start().await;
    let peer = Provider::holding(11, &lib);
    gw.announce(&peer, &lib, 1).await;
    let token = gw.token(&lib.manifest.movie);
    let (hash, url) = gw.media_url(&lib, 0, 1, &token);
    assert!(!gw.store.has_segment(&hash));

    // Twenty viewers miss the same segment at once: one peer fetch serves them all.
    let mut joins = Vec::new();
    for _ in 0..20 {
        let (client, url) = (gw.client.clone(), url.clone());
        joins.push(tokio::spawn(async move {
            let res = client.get(&url).send().await.unwrap();
            (res.status().as_u16(), res.bytes().await.unwrap())
        }));
    }
    for j in joins {
        let (status, body) = j.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(&body[..], &lib.bytes[&hash][..]);
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("reelnet_peer_fetch_seconds_count 1\n"),
        "one fetch for twenty viewers:\n{metrics}"
    );
    assert!(metrics.contains("reelnet_fetches_coalesced_total"));
    // Cached: served from disk from now on, even with the peer gone. The store write
    // follows the viewers' responses (they do not wait for its fsync).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw.store.has_segment(&hash) {
        assert!(
            std::time::Instant::now() < deadline,
            "fetched segment never stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    peer.server.shutdown();
    let again = gw.get(&url).await;
    assert_eq!(again.status(), 200);
    assert_eq!(&again.bytes().await.unwrap()[..], &lib.bytes[&hash][..]);
    // The init segment too comes from the peer.
    let init = lib.manifest.tracks[1].init.unwrap().hash;
    let init_url = format!(
        "{}/hls/{}/{}/{}/{init}.mp4?token={token}",
        gw.url,
        lib.manifest.movie,
        lib.id(),
        lib.manifest.tracks[1].rendition.name
    );
    // The peer is down now, and no one else holds it.
    let res = gw.get(&init_url).await;
    assert_eq!(res.status(), 502);
    gw.stop().await;
}

#[tokio::test]
async fn a_bad_or_dying_peer_is_passed_over_for_another_replica() {
    let lib = Library::new(3, true, 2);
    let gw = Gateway::start().await;
    // The first providers asked serve garbage or die mid-segment; the last is good.
    let bad = Provider::evil(12, &lib, Evil::Truncated);
    let bad2 = Provider::evil(13, &lib, Evil::WrongBytes);
    // Untried providers are asked in the gateway's spread order for the segment: pick a
    // good one that this order puts last for segment 0.
    let me = reelnet_proto::NodeId::from_verifying_key(&gw.key.verifying_key());
    let addr = bad.addr;
    let seed = (14..=255u8)
        .find(|s| {
            let ids = [bad.id(), bad2.id(), Provider::id_of(*s)];
            let order = reelnet_node::gateway::hls::spread_providers(
                me,
                lib.manifest.origin,
                Some(0),
                ids.iter().map(|id| (*id, addr)),
            );
            order.last().map(|p| p.0) == Some(ids[2])
        })
        .unwrap();
    let good = Provider::holding(seed, &lib);
    gw.announce(&bad, &lib, 1).await;
    gw.announce(&bad2, &lib, 1).await;
    gw.announce(&good, &lib, 1).await;
    let token = gw.token(&lib.manifest.movie);
    for index in 0..2 {
        let (hash, url) = gw.media_url(&lib, 0, index, &token);
        let res = gw.get(&url).await;
        assert_eq!(res.status(), 200);
        assert_eq!(&res.bytes().await.unwrap()[..], &lib.bytes[&hash][..]);
    }
    // Both bad providers were tried (and marked down), the good one delivered.
    for evil in [&bad, &bad2] {
        let stats = gw.fetcher.stats(&evil.id()).expect("bad provider tried");
        assert!(stats.last_failure.is_some() && stats.successes == 0);
    }
    assert_eq!(gw.fetcher.stats(&good.id()).unwrap().successes, 2);
    // Nothing bad was stored.
    for (hash, bytes) in &lib.bytes {
        if let Some(stored) = gw.store.read_segment(hash).unwrap() {
            assert_eq!(&stored, bytes);
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn growing_manifest_is_an_event_playlist_until_complete() {
    let v1 = Library::new(4, false, 2);
    let v2 = v1.grown(3, true);
    let gw = Gateway::start().await;
    gw.hold(&v1);
    gw.announce_self(&v1).await;
    let token = gw.token(&v1.manifest.movie);
    let url = format!(
        "{}/hls/{}/{}/720p/index.m3u8?token={token}",
        gw.url,
        v1.manifest.movie,
        v1.id()
    );
    let res = gw.get(&url).await;
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    let text = res.text().await.unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"));
    assert_eq!(segment_uris(&text).len(), 3);

    // The ingest grows and completes; the same URL (naming the first version) now shows
    // the newest version as VOD.
    gw.hold(&v2);
    gw.announce_self(&v2).await;
    let text = gw.get(&url).await.text().await.unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(segment_uris(&text).len(), 6, "init + 2 + 3 media");
    gw.stop().await;
}

#[tokio::test]
async fn tokens_are_required_and_scoped_to_one_movie() {
    let lib = Library::new(5, true, 2);
    let other = Library::with_movie(6, MovieId::from_tmdb(604), true, 2);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.hold(&other);
    gw.announce_self_all(&[&lib, &other]).await;
    let movie = &lib.manifest.movie;
    let good = gw.token(movie);
    let (_, seg) = gw.media_url(&lib, 0, 0, &good);
    assert_eq!(gw.get(&seg).await.status(), 200);
    let bare = seg.split('?').next().unwrap().to_owned();

    let master = |t: &str| format!("{}/hls/{movie}/master.m3u8{t}", gw.url);
    assert_eq!(gw.get(&master("")).await.status(), 401);
    assert_eq!(gw.get(&bare).await.status(), 401);
    assert_eq!(gw.get(&master("?token=")).await.status(), 401);
    assert_eq!(gw.get(&master("?token=garbage")).await.status(), 403);
    // Signed by another node's secret.
    let forged = gw.foreign_token(movie);
    assert_eq!(
        gw.get(&master(&format!("?token={forged}"))).await.status(),
        403
    );
    // Expired.
    let expired = gw.token_expired(movie);
    assert_eq!(
        gw.get(&master(&format!("?token={expired}"))).await.status(),
        403
    );
    assert_eq!(
        gw.get(&format!("{bare}?token={expired}")).await.status(),
        403
    );
    // A token for the other movie opens neither this movie's playlists nor its segments.
    let wrong = gw.token(&other.manifest.movie);
    assert_eq!(
        gw.get(&master(&format!("?token={wrong}"))).await.status(),
        403
    );
    assert_eq!(gw.get(&format!("{bare}?token={wrong}")).await.status(), 403);
    // ...nor this movie's segments through the other movie's URL space.
    let (hash, _) = gw.media_url(&lib, 0, 0, &good);
    let sneaky = format!(
        "{}/hls/{}/{}/720p/{hash}.m4s?token={wrong}",
        gw.url,
        other.manifest.movie,
        other.id()
    );
    assert_eq!(gw.get(&sneaky).await.status(), 404);
    let sneaky2 = format!(
        "{}/hls/{}/{}/720p/{hash}.m4s?token={wrong}",
        gw.url,
        other.manifest.movie,
        lib.id()
    );
    assert_eq!(gw.get(&sneaky2).await.status(), 404);
    // Bodies are JSON errors.
    let res = gw.get(&master("")).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "missing_token");
    gw.stop().await;
}

#[tokio::test]
async fn traversal_attempts_are_refused() {
    let lib = Library::new(7, true, 1);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let token = gw.token(&lib.manifest.movie);
    let movie = &lib.manifest.movie;
    let id = lib.id();
    let attempts = [
        "/hls/../../etc/passwd".to_owned(),
        "/hls/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/hls/%252e%252e/%252e%252e/etc/passwd".to_owned(),
        "/hls/..%2f..%2f..%2fetc%2fpasswd/master.m3u8".to_owned(),
        format!("/hls/{movie}/{id}/720p/..%2f..%2f..%2fetc%2fpasswd?token={token}"),
        format!("/hls/{movie}/{id}/..%2f..%2f/index.m3u8?token={token}"),
        format!("/hls/{movie}/{id}/720p/%2e%2e%2f%2e%2e%2fnode.key?token={token}"),
        format!("/hls/{movie}/..%252f..%252f/720p/index.m3u8?token={token}"),
        "/images/..".to_owned(),
        "/images/..%2f..%2fnode.key".to_owned(),
        "/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "/..%2f..%2fetc%2fpasswd".to_owned(),
    ];
    for path in &attempts {
        let (status, body) = raw_get(gw.addr, path).await;
        assert!(
            status == 400 || status == 401 || status == 403 || status == 404,
            "{path}: {status}"
        );
        assert!(!body.contains("root:"), "{path} leaked /etc/passwd");
    }
    gw.stop().await;
}

#[tokio::test]
async fn unknown_movies_manifests_and_renditions_are_404() {
    let lib = Library::new(8, true, 1);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let token = gw.token(&lib.manifest.movie);
    let movie = &lib.manifest.movie;
    let unknown = MovieId::from_tmdb(999);
    let t2 = gw.token(&unknown);
    assert_eq!(
        gw.get(&format!("{}/hls/{unknown}/master.m3u8?token={t2}", gw.url))
            .await
            .status(),
        404
    );
    let (hash, _) = gw.media_url(&lib, 0, 0, &token);
    for path in [
        format!("/hls/{movie}/{}/1080p/index.m3u8", lib.id()),
        format!("/hls/{movie}/{}/720p/index.m3u8", "0".repeat(64)),
        format!("/hls/{movie}/{}/720p/{}.m4s", lib.id(), "a".repeat(64)),
        format!("/hls/{movie}/{}/720p/{hash}.ts", lib.id()),
        format!("/hls/{movie}/{}/720p/{hash}", lib.id()),
    ] {
        let res = gw.get(&format!("{}{path}?token={token}", gw.url)).await;
        assert_eq!(res.status(), 404, "{path}");
    }
    gw.stop().await;
}

/// A library with a subtitle track and a thumbnail track added (segment bytes are what the
/// gateway serves; it does not look inside them).
fn with_subtitles_and_thumbnails(lib: &mut Library) {
    use reelnet_proto::manifest::{MediaInfo, ThumbnailGrid, TrackKind, SUBTITLE_GROUP};
    use reelnet_proto::{Rendition, SegmentEntry, SegmentHash, SignedManifest, Track};
    let mut add = |bytes: Vec<u8>, duration_ms: u32| {
        let hash = SegmentHash::of(&bytes);
        let size = bytes.len() as u32;
        lib.bytes.insert(hash, bytes);
        SegmentEntry {
            hash,
            duration_ms,
            size,
        }
    };
    let n = lib.manifest.tracks[0].segments.len();
    let vtt: Vec<SegmentEntry> = (0..n)
        .map(|i| {
            add(
                format!("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:90000,LOCAL:00:00:00.000\n\n{i}\n").into(),
                4000,
            )
        })
        .collect();
    // 4 × 4 s of video, a tile every 2 s, 2×2 tiles per sheet: two full sheets.
    let sheets = vec![
        add(b"\xff\xd8sheet-0".to_vec(), 8000),
        add(b"\xff\xd8sheet-1".to_vec(), 8000),
    ];
    let zero = |name: &str, codecs: &str| Rendition {
        name: name.into(),
        width: 0,
        height: 0,
        bandwidth: 1000,
        codecs: codecs.into(),
        frame_rate_milli: 0,
    };
    lib.manifest.tracks.push(Track {
        rendition: zero("subs-en", "wvtt"),
        kind: TrackKind::Subtitles,
        media: Some(MediaInfo {
            group: SUBTITLE_GROUP.into(),
            language: Some("en".into()),
            name: "English".into(),
            channels: 0,
            default: false,
            autoselect: true,
            forced: false,
            characteristics: 0,
        }),
        init: None,
        segments: vtt,
    });
    lib.manifest.tracks.push(Track {
        rendition: zero("thumbnails", "jpeg"),
        kind: TrackKind::Thumbnails(ThumbnailGrid {
            interval_ms: 2000,
            tile_width: 160,
            tile_height: 90,
            columns: 2,
            rows: 2,
        }),
        media: None,
        init: None,
        segments: sheets,
    });
    lib.signed = SignedManifest::sign(&lib.manifest, &lib.key).unwrap();
}

#[tokio::test]
async fn subtitle_segments_and_the_thumbnail_index() {
    let mut lib = Library::new(7, true, 4);
    with_subtitles_and_thumbnails(&mut lib);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let token = gw.token(&lib.manifest.movie);
    let base = format!("{}/hls/{}", gw.url, lib.manifest.movie);

    // The thumbnail index: one cue per 2 s tile, pointing into the sheets by region.
    let res = gw
        .get(&format!("{base}/thumbnails.vtt?token={token}"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/vtt");
    let text = res.text().await.unwrap();
    let cues: Vec<&str> = text.split("\n\n").skip(1).map(str::trim).collect();
    assert!(text.starts_with("WEBVTT\n"), "{text}");
    assert_eq!(cues.len(), 8, "{text}");
    let id = lib.id();
    let sheet = |i: usize| lib.manifest.tracks[3].segments[i].hash;
    assert_eq!(
        cues[0],
        format!(
            "00:00:00.000 --> 00:00:02.000\n{id}/thumbnails/{}.jpg?token={token}#xywh=0,0,160,90",
            sheet(0)
        )
    );
    assert_eq!(
        cues[7],
        format!(
            "00:00:14.000 --> 00:00:16.000\n{id}/thumbnails/{}.jpg?token={token}#xywh=160,90,160,90",
            sheet(1)
        )
    );
    // A cue's sheet, relative to the index.
    let uri = cues[3]
        .split('\n')
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap();
    let res = gw.get(&format!("{base}/{uri}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(&res.bytes().await.unwrap()[..], b"\xff\xd8sheet-0");
    // Without a token: refused.
    let res = gw.get(&format!("{base}/thumbnails.vtt")).await;
    assert_eq!(res.status(), 401);

    // The subtitle rendition: .vtt segments served as text/vtt.
    let res = gw
        .get(&format!("{base}/{id}/subs-en/index.m3u8?token={token}"))
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let segs = segment_uris(&text);
    assert_eq!(segs.len(), 4, "{text}");
    assert!(segs.iter().all(|s| s.contains(".vtt?token=")), "{text}");
    let res = gw.get(&format!("{base}/{id}/subs-en/{}", segs[1])).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/vtt");
    assert!(res.text().await.unwrap().ends_with("\n\n1\n"));

    // A movie without thumbnails: 404.
    let plain = Library::with_movie(8, MovieId::from_tmdb(604), true, 2);
    gw.hold(&plain);
    gw.announce_self(&plain).await;
    let t2 = gw.token(&plain.manifest.movie);
    let res = gw
        .get(&format!(
            "{}/hls/{}/thumbnails.vtt?token={t2}",
            gw.url, plain.manifest.movie
        ))
        .await;
    assert_eq!(res.status(), 404);
    gw.stop().await;
}
