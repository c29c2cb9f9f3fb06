//! Watch-party room protocol against a real tracker process over real WebSockets: create and
//! join, late joiners, host-only control, scheduled execution times, buffering with the ready
//! timeout, chat, bad frames, limits, and a restart that keeps the room.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::ws::{connect, create, expect, next, none_of, now_ms, presence, send};
use common::{access, Tracker};
use futures::SinkExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const ROOMS: &str = "[rooms]\npremium_only = false\nmax_rooms_per_user = 2\nmax_members = 3\nready_timeout_ms = 1000\n";

#[tokio::test]
async fn create_join_control_chat_and_bad_input() {
    let t = Tracker::start_with(ROOMS).await;
    let host = access(&t.user("host@example.org", "a long password").await);
    let guest = access(&t.user("guest@example.org", "a long password").await);
    let third = access(&t.user("third@example.org", "a long password").await);

    // Create: id, invite link, paused at 0.
    let (s, room) = create(&t, &host, "tmdb-603").await;
    assert_eq!(s, 201, "{room}");
    let id = room["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(room["invite_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/room/{id}")));
    assert_eq!(room["movie_id"], "tmdb-603");
    assert_eq!(room["state"]["playing"], false);
    let (s, b) = create(&t, &host, "../etc").await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_movie_id")));
    let (s, b) = t
        .call(Method::GET, &format!("/api/v1/rooms/{id}"), &guest, None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["host"], room["host"]);
    let (s, _) = t
        .call(Method::GET, "/api/v1/rooms/0123", &guest, None)
        .await;
    assert_eq!(s, 404);

    // Non-members: no token, a bad token, an unknown room are refused before the upgrade.
    let base = format!("ws://127.0.0.1:{}/api/v1/rooms", t.port);
    for url in [
        format!("{base}/{id}/ws?access_token=not.a.jwt"),
        format!("{base}/ffff/ws?access_token={guest}"),
    ] {
        let e = tokio_tungstenite::connect_async(url.clone()).await;
        assert!(e.is_err(), "{url} was accepted");
    }
    // No token at all: the first frame must authenticate, anything else ends it.
    let (mut anon, _) = tokio_tungstenite::connect_async(format!("{base}/{id}/ws"))
        .await
        .unwrap();
    send(&mut anon, json!({"type": "play"})).await;
    let e = expect(&mut anon, "error").await;
    assert_eq!(e["code"], "missing_token");
    assert!(next(&mut anon, Duration::from_secs(2)).await.is_none());

    // The host joins with a query token; the guest with an auth frame.
    let mut h = connect(&t, &id, &host).await;
    let w = expect(&mut h, "welcome").await;
    assert_eq!(w["room"]["id"], id.as_str());
    assert!((w["server_time"].as_f64().unwrap() - now_ms()).abs() < 1000.0);
    let (mut g, _) = tokio_tungstenite::connect_async(format!("{base}/{id}/ws"))
        .await
        .unwrap();
    send(&mut g, json!({"type": "auth", "token": guest})).await;
    let w = expect(&mut g, "welcome").await;
    assert_eq!(w["room"]["members"].as_array().unwrap().len(), 2);
    expect(&mut h, "members").await; // the host's own join
    let m = expect(&mut h, "members").await;
    assert_eq!(
        (m["event"].as_str(), m["members"].as_array().unwrap().len()),
        (Some("join"), 2)
    );

    // Clock sync: t0 echoed, t1 <= t2, both close to our clock.
    let t0 = now_ms();
    send(&mut g, json!({"type": "ping", "t0": t0})).await;
    let p = expect(&mut g, "pong").await;
    // Echoed (serde_json's default float parsing may be off by one ulp, ~0.2 µs here).
    assert!(
        (p["t0"].as_f64().unwrap() - t0).abs() < 0.001,
        "{p} vs {t0}"
    );
    let (t1, t2) = (p["t1"].as_f64().unwrap(), p["t2"].as_f64().unwrap());
    assert!(t1 <= t2 && (t1 - t0).abs() < 1000.0, "{p}");

    // Guest commands are refused (host-only room) and change nothing.
    send(&mut g, json!({"type": "play"})).await;
    assert_eq!(expect(&mut g, "error").await["code"], "not_allowed");
    send(
        &mut g,
        json!({"type": "settings", "anyone_can_control": true}),
    )
    .await;
    assert_eq!(expect(&mut g, "error").await["code"], "not_allowed");
    none_of(&mut h, "state", Duration::from_millis(300)).await;

    // Host play: scheduled at least 300 ms ahead, the same state for everyone.
    let before = now_ms();
    send(&mut h, json!({"type": "play", "position": 10.0})).await;
    let sh = expect(&mut h, "state").await;
    let sg = expect(&mut g, "state").await;
    assert_eq!(sh, sg);
    let at = sh["state"]["at"].as_f64().unwrap();
    assert!(
        at - before >= 300.0 && at - before < 1500.0,
        "lead {}",
        at - before
    );
    assert_eq!(sh["state"]["playing"], true);
    assert_eq!(sh["state"]["position"], 10.0);
    assert_eq!(sh["reason"], "play");

    // A slow member's RTT stretches the lead to 2 × RTT.
    send(
        &mut g,
        json!({"type": "ping", "t0": now_ms(), "rtt": 400.0}),
    )
    .await;
    expect(&mut g, "pong").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = now_ms();
    send(&mut h, json!({"type": "seek", "position": 42.5})).await;
    let s = expect(&mut g, "state").await;
    let lead = s["state"]["at"].as_f64().unwrap() - before;
    assert!((790.0..1500.0).contains(&lead), "lead {lead}");
    assert_eq!(s["state"]["position"], 42.5);
    assert_eq!(s["state"]["playing"], true);
    assert_eq!(s["reason"], "seek");
    expect(&mut h, "state").await;
    send(&mut g, json!({"type": "ping", "t0": now_ms(), "rtt": 5.0})).await;
    expect(&mut g, "pong").await;

    // Late joiner: the current state, positioned by the server clock.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut late = connect(&t, &id, &third).await;
    let w = expect(&mut late, "welcome").await;
    let st = &w["room"]["state"];
    assert_eq!(st["playing"], true);
    let expected = st["position"].as_f64().unwrap()
        + (w["server_time"].as_f64().unwrap() - st["at"].as_f64().unwrap()) / 1000.0;
    assert!((expected - 42.5).abs() < 1.0 && expected > 42.5, "{w}");

    // Member limit (3): a fourth connection is refused with an error frame.
    let mut fourth = connect(&t, &id, &guest).await;
    assert_eq!(expect(&mut fourth, "error").await["code"], "room_full");
    assert!(next(&mut fourth, Duration::from_secs(2)).await.is_none());

    // Pause: everyone gets the position at the scheduled time.
    send(&mut h, json!({"type": "pause"})).await;
    let s = expect(&mut late, "state").await;
    assert_eq!(s["state"]["playing"], false);
    let p = s["state"]["position"].as_f64().unwrap();
    assert!(p > 42.6 && p < 46.0, "{s}");

    // Chat reaches everyone; too long, empty and too many are refused.
    send(&mut g, json!({"type": "chat", "text": "hello there"})).await;
    for ws in [&mut h, &mut g, &mut late] {
        let c = expect(ws, "chat").await;
        assert_eq!(c["text"], "hello there");
        assert_eq!(c["name"], "Tester");
    }
    send(&mut g, json!({"type": "chat", "text": "x".repeat(501)})).await;
    assert_eq!(expect(&mut g, "error").await["code"], "bad_chat");
    send(&mut g, json!({"type": "chat", "text": "   "})).await;
    assert_eq!(expect(&mut g, "error").await["code"], "bad_chat");
    for i in 0..4 {
        send(&mut g, json!({"type": "chat", "text": format!("spam {i}")})).await;
    }
    send(&mut g, json!({"type": "chat", "text": "one too many"})).await;
    assert_eq!(expect(&mut g, "error").await["code"], "chat_rate_limited");

    // Malformed, unknown, oversized and binary frames get an error frame; the room goes on.
    for bad in [
        "not json".to_owned(),
        json!({"type": "nuke"}).to_string(),
        json!({"type": "seek"}).to_string(),
        json!({"type": "seek", "position": -3}).to_string(),
        json!({"type": "seek", "position": "ten"}).to_string(),
        json!({"type": "chat", "text": "y".repeat(5000)}).to_string(),
    ] {
        h.send(Message::Text(bad.clone().into())).await.unwrap();
        let e = expect(&mut h, "error").await;
        assert!(
            ["bad_frame", "bad_position", "frame_too_large"].contains(&e["code"].as_str().unwrap()),
            "{bad}: {e}"
        );
    }
    h.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(expect(&mut h, "error").await["code"], "bad_frame");
    let (_, b) = t
        .call(Method::GET, &format!("/api/v1/rooms/{id}"), &host, None)
        .await;
    assert_eq!(b["state"]["playing"], false);
    assert_eq!(b["members"].as_array().unwrap().len(), 3);

    // The host lets anyone control; now the guest's seek is accepted.
    send(
        &mut h,
        json!({"type": "settings", "anyone_can_control": true}),
    )
    .await;
    assert_eq!(expect(&mut g, "settings").await["anyone_can_control"], true);
    send(&mut g, json!({"type": "seek", "position": 5.0})).await;
    let s = expect(&mut h, "state").await;
    assert_eq!(s["state"]["position"], 5.0);
    assert_eq!(s["by"], g_user(&t, &guest).await);

    // Leaving is presence.
    late.close(None).await.unwrap();
    let m = presence(&mut h, "leave").await;
    assert_eq!(
        (m["event"].as_str(), m["members"].as_array().unwrap().len()),
        (Some("leave"), 2)
    );

    // Room limit per host (2).
    let (s, _) = create(&t, &host, "tmdb-604").await;
    assert_eq!(s, 201);
    let (s, b) = create(&t, &host, "tmdb-605").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("too_many_rooms")),
        "{b}"
    );

    // A flood of frames (here clock pings, answered on the spot) is cut off at the
    // connection's frame budget: a `rate_limited` error, the rest dropped unanswered.
    for i in 0..300 {
        send(&mut g, json!({"type": "ping", "t0": i})).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    while let Some(f) = next(&mut g, Duration::from_secs(1)).await {
        match f["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") if f["code"] == "rate_limited" => limited += 1,
            _ => {}
        }
    }
    assert!(limited >= 1, "no rate_limited error");
    // Not an error per dropped frame: one per run of dropped frames.
    assert!(
        pongs + limited < 300,
        "every flooded ping was answered: {pongs} pongs, {limited} errors"
    );
    assert!(pongs >= 50, "the burst was not let through: {pongs}");
}

async fn g_user(t: &Tracker, token: &str) -> Value {
    let (_, me) = t.call(Method::GET, "/api/v1/me", token, None).await;
    me["id"].clone()
}

#[tokio::test]
async fn buffering_waits_for_ready_then_times_out() {
    let t = Tracker::start_with(ROOMS).await;
    let host = access(&t.user("bh@example.org", "a long password").await);
    let guest = access(&t.user("bg@example.org", "a long password").await);
    let (_, room) = create(&t, &host, "tmdb-1").await;
    let id = room["id"].as_str().unwrap();
    let mut h = connect(&t, id, &host).await;
    let mut g = connect(&t, id, &guest).await;
    expect(&mut g, "welcome").await;

    send(&mut h, json!({"type": "play", "position": 0.0})).await;
    expect(&mut g, "state").await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    // The guest stalls: the room pauses where it is and shows who buffers.
    send(&mut g, json!({"type": "buffering"})).await;
    let m = presence(&mut h, "buffering").await;
    assert!(m["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["buffering"] == true));
    let s = expect(&mut h, "state").await;
    assert_eq!(
        (s["reason"].as_str(), s["state"]["playing"].as_bool()),
        (Some("waiting"), Some(false))
    );
    let paused_at = s["state"]["position"].as_f64().unwrap();
    assert!(paused_at > 0.3 && paused_at < 1.5, "{s}");

    // The guest is ready: everyone resumes together from that position.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut g, json!({"type": "ready"})).await;
    let s = expect(&mut h, "state").await;
    assert_eq!(
        (s["reason"].as_str(), s["state"]["playing"].as_bool()),
        (Some("resume"), Some(true))
    );
    assert_eq!(s["state"]["position"].as_f64().unwrap(), paused_at);

    // The guest stalls and never recovers: the room goes on after the ready timeout (1 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stalled = Instant::now();
    send(&mut g, json!({"type": "buffering"})).await;
    let s = expect(&mut h, "state").await;
    assert_eq!(s["reason"], "waiting");
    let s = expect(&mut h, "state").await;
    let waited = stalled.elapsed();
    assert_eq!(
        (s["reason"].as_str(), s["state"]["playing"].as_bool()),
        (Some("ready_timeout"), Some(true))
    );
    // Not before the timeout; how much later depends on the machine's load, so it is
    // reported rather than bounded.
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    println!("the room went on {waited:?} after the stall (ready timeout 1 s)");

    // The slow member's further stalls no longer stop the room (it catches up by itself).
    send(&mut g, json!({"type": "buffering"})).await;
    none_of(&mut h, "state", Duration::from_millis(600)).await;

    // A host play while someone (not ignored) buffers waits for them too, then times out.
    let mut g2 = connect(&t, id, &guest).await;
    expect(&mut g2, "welcome").await;
    send(&mut h, json!({"type": "pause"})).await;
    expect(&mut h, "state").await;
    send(&mut g2, json!({"type": "buffering"})).await;
    // Frames on two sockets have no order: wait until the room has taken the stall in.
    presence(&mut h, "buffering").await;
    send(&mut h, json!({"type": "play"})).await;
    let s = expect(&mut h, "state").await;
    assert_eq!(s["reason"], "waiting");
    let s = expect(&mut h, "state").await;
    assert_eq!(s["reason"], "ready_timeout");
    // A buffering member that leaves never blocks the room.
    send(&mut h, json!({"type": "pause"})).await;
    expect(&mut h, "state").await;
    drop(g);
    drop(g2);
}

#[tokio::test]
async fn premium_only_refuses_free_hosts() {
    let t = Tracker::start().await;
    let free = access(&t.user("free@example.org", "a long password").await);
    let (s, b) = create(&t, &free, "tmdb-603").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("premium_required")),
        "{b}"
    );
    let (s, b) = t
        .call(
            Method::POST,
            "/api/v1/rooms",
            &free,
            Some(json!({"nope": 1})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn rooms_survive_a_restart_and_members_resync() {
    let mut t = Tracker::start_with(ROOMS).await;
    let host = access(&t.user("rh@example.org", "a long password").await);
    let guest = access(&t.user("rg@example.org", "a long password").await);
    let (_, room) = create(&t, &host, "tmdb-77").await;
    let id = room["id"].as_str().unwrap().to_owned();
    let mut h = connect(&t, &id, &host).await;
    let mut g = connect(&t, &id, &guest).await;
    expect(&mut g, "welcome").await;
    send(&mut h, json!({"type": "seek", "position": 120.0})).await;
    expect(&mut g, "state").await;
    send(&mut h, json!({"type": "play"})).await;
    let played = expect(&mut g, "state").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // kill -9: the connections drop.
    t.kill9();
    assert!(next(&mut g, Duration::from_secs(3)).await.is_none());
    t.spawn().await;

    // Clients reconnect (tokens still valid) and get the same room and state.
    let mut g = connect(&t, &id, &guest).await;
    let w = expect(&mut g, "welcome").await;
    assert_eq!(w["room"]["movie_id"], "tmdb-77");
    assert_eq!(w["room"]["state"], played["state"], "{w}");
    assert_eq!(w["room"]["seq"], played["seq"]);
    let mut h = connect(&t, &id, &host).await;
    expect(&mut h, "welcome").await;
    send(&mut h, json!({"type": "pause"})).await;
    let s = expect(&mut g, "state").await;
    assert!(s["seq"].as_u64().unwrap() > played["seq"].as_u64().unwrap());
    assert!(s["state"]["position"].as_f64().unwrap() > 120.0);
}

/// A guest toggling buffering/ready cannot keep a party paused: after `stall_burst` stalls
/// in the window (counted per user, so reconnecting does not help) their `buffering` frames
/// are dropped, they are told once, and the room keeps playing. `ready` always works.
#[tokio::test]
async fn a_member_cannot_keep_the_party_paused() {
    let t = Tracker::start_with(&format!(
        "{ROOMS}stall_burst = 2\nstall_window_ms = 600000\n"
    ))
    .await;
    let host = access(&t.user("sh@example.org", "a long password").await);
    let guest = access(&t.user("sg@example.org", "a long password").await);
    let (_, room) = create(&t, &host, "tmdb-2").await;
    let id = room["id"].as_str().unwrap();
    let mut h = connect(&t, id, &host).await;
    let mut g = connect(&t, id, &guest).await;
    expect(&mut g, "welcome").await;
    send(&mut h, json!({"type": "play", "position": 0.0})).await;
    expect(&mut g, "state").await;
    let s = expect(&mut h, "state").await;
    assert_eq!(s["reason"], "play", "{s}");

    // Two stalls: each pauses the room until the guest is ready.
    for _ in 0..2 {
        send(&mut g, json!({"type": "buffering"})).await;
        let s = expect(&mut h, "state").await;
        assert_eq!(
            (s["reason"].as_str(), s["state"]["playing"].as_bool()),
            (Some("waiting"), Some(false))
        );
        send(&mut g, json!({"type": "ready"})).await;
        let s = expect(&mut h, "state").await;
        assert_eq!(
            (s["reason"].as_str(), s["state"]["playing"].as_bool()),
            (Some("resume"), Some(true))
        );
    }

    // A third, from a new connection of the same guest: dropped, and the guest is told.
    drop(g);
    presence(&mut h, "leave").await;
    let mut g = connect(&t, id, &guest).await;
    expect(&mut g, "welcome").await;
    presence(&mut h, "join").await;
    send(&mut g, json!({"type": "buffering"})).await;
    let e = expect(&mut g, "error").await;
    assert_eq!(e["code"], "stall_rate_limited", "{e}");
    // Told once: further stalls are dropped silently; ready is accepted (and changes
    // nothing, the guest was never marked buffering).
    send(&mut g, json!({"type": "ready"})).await;
    send(&mut g, json!({"type": "buffering"})).await;
    send(&mut g, json!({"type": "ready"})).await;
    send(&mut g, json!({"type": "buffering"})).await;
    // A ping after them: its pong proves the frames before it were handled.
    send(&mut g, json!({"type": "ping", "t0": 1.0})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = next(&mut g, deadline.saturating_duration_since(Instant::now()))
            .await
            .expect("no pong");
        assert_ne!(f["type"], "error", "told twice: {f}");
        assert_ne!(f["type"], "state", "the room changed state: {f}");
        if f["type"] == "pong" {
            break;
        }
    }
    // The host saw no pause, nobody is shown buffering, and the room plays on.
    none_of(&mut h, "state", Duration::from_millis(300)).await;
    let (s, r) = t
        .call(Method::GET, &format!("/api/v1/rooms/{id}"), &host, None)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"]["playing"], true, "{r}");
    assert!(
        r["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["buffering"] == false),
        "{r}"
    );

    // The limit is the guest's own: the host's stalls still pause the room.
    send(&mut h, json!({"type": "buffering"})).await;
    let s = expect(&mut h, "state").await;
    assert_eq!(s["reason"], "waiting", "{s}");
    send(&mut h, json!({"type": "ready"})).await;
    let s = expect(&mut h, "state").await;
    assert_eq!(s["reason"], "resume", "{s}");
}
