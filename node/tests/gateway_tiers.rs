//! Tier enforcement on the gateway's `/hls` routes (real catalog, store and warp gateway on
//! loopback): a free viewer's master playlist leaves out the top rendition, and its variant
//! playlist and segments answer 403 `premium_required` even when the URL is guessed; a
//! premium viewer gets everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common_gateway;

use common_gateway::*;

fn variants(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn free_viewers_do_not_get_the_top_rendition() {
    let lib = Library::new(21, true, 3);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let movie = &lib.manifest.movie;
    let base = format!("{}/hls/{movie}", gw.url);

    // Premium: both rungs (720p and 360p).
    let premium = gw.token(movie);
    let res = gw.get(&format!("{base}/master.m3u8?token={premium}")).await;
    assert_eq!(res.status(), 200);
    let all = variants(&res.text().await.unwrap());
    assert_eq!(all.len(), 2, "{all:?}");
    let top = all.iter().find(|v| v.contains("/720p/")).unwrap().clone();

    // Free: only 360p is listed.
    let free = gw.token_free(movie);
    let res = gw.get(&format!("{base}/master.m3u8?token={free}")).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let listed = variants(&text);
    assert_eq!(listed.len(), 1, "{text}");
    assert!(listed[0].contains("/360p/"), "{text}");
    assert!(!text.contains("RESOLUTION=1280x720"), "{text}");

    // The free viewer plays 360p end to end.
    let low = format!("{base}/{}", listed[0]);
    let res = gw.get(&low).await;
    assert_eq!(res.status(), 200);
    let playlist = res.text().await.unwrap();
    let dir = low.rsplit_once('/').unwrap().0.to_owned();
    for uri in segment_uris(&playlist) {
        assert_eq!(gw.get(&format!("{dir}/{uri}")).await.status(), 200, "{uri}");
    }

    // Guessing the 720p URLs with a free token: 403 premium_required.
    let top_free = format!("{base}/{}", top.replace(&premium, &free));
    let res = gw.get(&top_free).await;
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "premium_required");
    let top_url = format!("{base}/{top}");
    let res = gw.get(&top_url).await;
    assert_eq!(res.status(), 200);
    let playlist = res.text().await.unwrap();
    let dir = top_url.rsplit_once('/').unwrap().0.to_owned();
    let segments = segment_uris(&playlist);
    assert!(!segments.is_empty());
    for uri in &segments {
        assert_eq!(gw.get(&format!("{dir}/{uri}")).await.status(), 200, "{uri}");
        let guessed = format!("{dir}/{}", uri.replace(&premium, &free));
        let res = gw.get(&guessed).await;
        assert_eq!(res.status(), 403, "{guessed}");
    }
}

#[test]
fn premium_tracks_never_lock_every_rendition() {
    let lib = Library::new(22, true, 1);
    let m = &lib.manifest;
    // Tracks are 720p then 360p.
    assert_eq!(
        reelnet_node::gateway::hls::premium_tracks(m, 1),
        vec![true, false]
    );
    assert_eq!(
        reelnet_node::gateway::hls::premium_tracks(m, 5),
        vec![true, false]
    );
    assert_eq!(
        reelnet_node::gateway::hls::premium_tracks(m, 0),
        vec![false, false]
    );
    let mut one = m.clone();
    one.tracks.truncate(1);
    assert_eq!(
        reelnet_node::gateway::hls::premium_tracks(&one, 1),
        vec![false]
    );
}

/// A premium token's premium renditions end with the premium period (`tier_until`) even
/// though the token itself lives on: past the end the master playlist leaves out the top
/// rendition and its URLs answer 403 `premium_required`, while the rest keeps playing. (The
/// tokens are issued in the past so no test waits for the clock.)
#[tokio::test]
async fn premium_renditions_end_with_the_premium_period() {
    let lib = Library::new(23, true, 2);
    let gw = Gateway::start().await;
    gw.hold(&lib);
    gw.announce_self(&lib).await;
    let movie = &lib.manifest.movie;
    let base = format!("{}/hls/{movie}", gw.url);
    let now = reelnet_node::unix_now();
    let token = |until: u64| {
        let mut c = claims("user-p");
        c.tier = reelnet_proto::Tier::Premium;
        c.tier_until = Some(until);
        gw.tokens.issue_at(&c, movie, now - 100, 600).unwrap().0
    };
    let gw = &gw;
    let master = |t: String| {
        let url = format!("{base}/master.m3u8?token={t}");
        async move {
            let res = gw.get(&url).await;
            assert_eq!(res.status(), 200);
            variants(&res.text().await.unwrap())
        }
    };

    // Still premium (the period ends in 50 s): both rungs.
    let live = token(now + 50);
    let all = master(live.clone()).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let top = all.iter().find(|v| v.contains("/720p/")).unwrap().clone();
    assert_eq!(gw.get(&format!("{base}/{top}")).await.status(), 200);

    // The period ended 50 s ago (the token was issued 100 s ago, before it ended).
    let ended = token(now - 50);
    let listed = master(ended.clone()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("/360p/"), "{listed:?}");
    let res = gw
        .get(&format!("{base}/{}", top.replace(&live, &ended)))
        .await;
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "premium_required");
    let low = format!("{base}/{}", listed[0]);
    let res = gw.get(&low).await;
    assert_eq!(res.status(), 200);
    let playlist = res.text().await.unwrap();
    let dir = low.rsplit_once('/').unwrap().0.to_owned();
    for uri in segment_uris(&playlist) {
        assert_eq!(gw.get(&format!("{dir}/{uri}")).await.status(), 200, "{uri}");
    }
}
