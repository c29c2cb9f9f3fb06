//! The QUIC segment service end to end: real quinn endpoints on 127.0.0.1 in one process,
//! stores in temporary directories holding a real signed manifest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rand::{RngCore, SeedableRng};
use reelnet_node::store::Store;
use reelnet_node::transfer::server::server_config;
use reelnet_node::transfer::tls::{client_crypto, server_name};
use reelnet_node::transfer::{
    AttemptError, FetchError, FetchRequest, Fetcher, FetcherConfig, Limits, TransferServer,
    TransportTuning,
};
use reelnet_proto::transfer::FRAME_PREFIX_LEN;
use reelnet_proto::{
    decode_request, decode_response_header, encode_request, encode_response_header, Container,
    Manifest, ManifestId, MovieId, NodeId, Rendition, ResponseHeader, SegmentEntry, SegmentHash,
    SegmentRef, SegmentRequest, SignedManifest, Status, Track,
};

const SERVE_ADDR: &str = "127.0.0.1:0";

/// A signed two-track fMP4 manifest and the bytes of every segment it lists.
struct Library {
    signed: SignedManifest,
    manifest: Manifest,
    bytes: HashMap<SegmentHash, Vec<u8>>,
}

impl Library {
    fn new(seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let origin_key = SigningKey::generate(&mut rng);
        let mut bytes = HashMap::new();
        let mut entry = |len: usize, duration_ms: u32| {
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            let hash = SegmentHash::of(&b);
            bytes.insert(hash, b);
            SegmentEntry {
                hash,
                duration_ms,
                size: len as u32,
            }
        };
        let mut tracks = Vec::new();
        for (name, height, seg_len) in [("720p", 720u32, 300_000usize), ("360p", 360, 90_000)] {
            let init = entry(700, 0);
            let segments = (0..5).map(|i| entry(seg_len + i * 1000, 4000)).collect();
            tracks.push(Track {
                kind: reelnet_proto::manifest::TrackKind::Video,
                media: None,
                rendition: Rendition {
                    name: name.into(),
                    width: height * 16 / 9,
                    height,
                    bandwidth: 1_000_000,
                    codecs: "avc1.64001f".into(),
                    frame_rate_milli: 25_000,
                },
                init: Some(init),
                segments,
            });
        }
        let manifest = Manifest {
            version: reelnet_proto::manifest::MANIFEST_VERSION,
            movie: MovieId::from_tmdb(603),
            title: "The Matrix".into(),
            year: Some(1999),
            origin: NodeId::from_verifying_key(&origin_key.verifying_key()),
            ingest_id: [7; 16],
            seq: 1,
            created_at: 0,
            container: Container::Fmp4,
            target_duration_ms: 4000,
            tracks,
            complete: true,
            meta: Default::default(),
        };
        let signed = SignedManifest::sign(&manifest, &origin_key).unwrap();
        Self {
            signed,
            manifest,
            bytes,
        }
    }

    fn id(&self) -> ManifestId {
        self.signed.id()
    }

    /// Every (track, reference, entry) of the manifest: init, each index, each hash.
    fn all_refs(&self) -> Vec<(u16, SegmentRef, SegmentEntry)> {
        let mut out = Vec::new();
        for (t, track) in self.manifest.tracks.iter().enumerate() {
            let t = t as u16;
            let init = track.init.unwrap();
            out.push((t, SegmentRef::Init, init));
            out.push((t, SegmentRef::Hash(init.hash), init));
            for (i, seg) in track.segments.iter().enumerate() {
                out.push((t, SegmentRef::Index(i as u32), *seg));
                out.push((t, SegmentRef::Hash(seg.hash), *seg));
            }
        }
        out
    }
}

/// A node: key, store in a temporary directory.
struct TestNode {
    key: SigningKey,
    store: Store,
    _dir: tempfile::TempDir,
}

impl TestNode {
    fn new(seed: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
            store: Store::open(dir.path()).unwrap(),
            _dir: dir,
        }
    }

    fn id(&self) -> NodeId {
        NodeId::from_verifying_key(&self.key.verifying_key())
    }

    fn holding(seed: u8, lib: &Library) -> Self {
        let node = Self::new(seed);
        node.store.put_manifest(&lib.signed).unwrap();
        for b in lib.bytes.values() {
            node.store.put_segment(b, None).unwrap();
        }
        node
    }

    fn serve(&self, limits: Limits) -> (TransferServer, SocketAddr) {
        TransferServer::bind(
            SERVE_ADDR.parse().unwrap(),
            &self.key,
            self.store.clone(),
            limits,
        )
        .unwrap()
    }
}

fn limits() -> Limits {
    Limits {
        transport: TransportTuning::loopback(),
        ..Limits::default()
    }
}

fn fetcher(key: Option<&SigningKey>, attempt_timeout: Duration) -> Fetcher {
    Fetcher::with_config(
        key,
        FetcherConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            attempt_timeout,
            transport: TransportTuning::loopback(),
            ..FetcherConfig::default()
        },
    )
    .unwrap()
}

fn want(lib: &Library, track: u16, segment: SegmentRef, entry: &SegmentEntry) -> FetchRequest {
    FetchRequest {
        request: SegmentRequest {
            manifest: lib.id(),
            track,
            segment,
        },
        expected: entry.hash,
        size: Some(u64::from(entry.size)),
    }
}

#[tokio::test]
async fn fetches_every_segment_by_init_index_and_hash() {
    let lib = Library::new(1);
    let a = TestNode::holding(1, &lib);
    let b = TestNode::new(2);
    let (server, addr) = a.serve(limits());
    let fetcher = fetcher(Some(&b.key), Duration::from_secs(5));
    let providers = [(a.id(), addr)];

    for (track, seg, entry) in lib.all_refs() {
        let bytes = fetcher
            .fetch(&providers, lib.id(), track, seg, entry.hash)
            .await
            .unwrap_or_else(|e| panic!("{track} {seg:?}: {e}"));
        assert_eq!(bytes.as_ref(), lib.bytes[&entry.hash].as_slice());
        assert_eq!(SegmentHash::of(&bytes), entry.hash);
        // With the size known, and stored on B.
        let stored = fetcher
            .fetch_into_store(&providers, &want(&lib, track, seg, &entry), &b.store)
            .await
            .unwrap();
        assert_eq!(stored, bytes);
        assert_eq!(
            b.store.read_segment(&entry.hash).unwrap().unwrap(),
            lib.bytes[&entry.hash]
        );
    }
    // Everything went over one connection, and the provider has a score now.
    assert_eq!(fetcher.open_connections(), 1);
    let stats = fetcher.stats(&a.id()).unwrap();
    assert_eq!(stats.successes as usize, 2 * lib.all_refs().len());
    assert_eq!(stats.consecutive_failures, 0);
    server.shutdown_and_join().await;
}

#[tokio::test]
async fn sixty_four_concurrent_fetches_share_one_connection() {
    let lib = Library::new(2);
    let a = TestNode::holding(1, &lib);
    let (server, addr) = a.serve(limits());
    let fetcher = Arc::new(fetcher(None, Duration::from_secs(20)));
    let providers = vec![(a.id(), addr)];
    let refs = lib.all_refs();
    let lib = Arc::new(lib);
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (track, seg, entry) = refs[i % refs.len()];
            let (fetcher, providers, lib) = (fetcher.clone(), providers.clone(), lib.clone());
            tokio::spawn(async move {
                let got = fetcher
                    .fetch(&providers, lib.id(), track, seg, entry.hash)
                    .await
                    .unwrap();
                assert_eq!(got.as_ref(), lib.bytes[&entry.hash].as_slice());
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    eprintln!("64 concurrent fetches in {:?}", started.elapsed());
    assert_eq!(fetcher.open_connections(), 1);
    assert_eq!(fetcher.stats(&a.id()).unwrap().successes, 64);
    server.shutdown_and_join().await;
}

#[tokio::test]
async fn certificate_is_bound_to_the_node_id() {
    let lib = Library::new(3);
    let a = TestNode::holding(1, &lib);
    let (server, addr) = a.serve(limits());
    let fetcher = fetcher(None, Duration::from_secs(5));
    let (track, seg, entry) = lib.all_refs()[0];

    // Dialling A's address while expecting another node: the TLS handshake fails.
    let impostor_id = TestNode::new(9).id();
    let err = fetcher
        .fetch(&[(impostor_id, addr)], lib.id(), track, seg, entry.hash)
        .await
        .unwrap_err();
    let FetchError::AllFailed(failures) = err else {
        panic!("expected AllFailed, got {err}");
    };
    assert_eq!(failures.len(), 1);
    match &failures[0].1 {
        AttemptError::Connection(quinn::ConnectionError::TransportError(e)) => {
            let msg = e.to_string();
            assert!(msg.contains("certificate"), "{msg}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // Expecting the right node works.
    let bytes = fetcher
        .fetch(&[(a.id(), addr)], lib.id(), track, seg, entry.hash)
        .await
        .unwrap();
    assert_eq!(SegmentHash::of(&bytes), entry.hash);
    server.shutdown_and_join().await;
}

/// The server sends stored bytes without re-hashing them; the receiver's check catches a
/// flipped bit, the fetch goes on to the next provider and returns good bytes, and the
/// receiver's report makes the server re-check its copy: it is dropped (and counted), so
/// the next request for it is answered `NotFound`, never with the bad bytes again.
#[tokio::test]
async fn corrupt_stored_segment_is_reported_back_rechecked_and_dropped() {
    let lib = Library::new(4);
    let a = TestNode::holding(1, &lib);
    let good = TestNode::holding(3, &lib);
    let (track, seg, entry) = lib.all_refs()[2];
    let path = a.store.segment_path(&entry.hash);
    let mut bad = std::fs::read(&path).unwrap();
    bad[10] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();

    let (server, addr) = a.serve(limits());
    let (good_server, good_addr) = good.serve(limits());
    let fetcher = fetcher(None, Duration::from_secs(5));
    // Only the rotten provider: its answer fails the receiver's check.
    let err = fetcher
        .fetch(&[(a.id(), addr)], lib.id(), track, seg, entry.hash)
        .await
        .unwrap_err();
    let FetchError::AllFailed(failures) = err else {
        panic!("expected AllFailed, got {err}");
    };
    assert!(
        matches!(
            failures[0].1,
            AttemptError::HashMismatch { .. } | AttemptError::BadGroup { .. }
        ),
        "{:?}",
        failures[0].1
    );
    // The report reached the server, which re-checked its copy and dropped it.
    reelnet_testkit::wait_for(
        "the server to drop its corrupt copy",
        Duration::from_secs(10),
        || {
            let store = a.store.clone();
            async move { (store.corruption().segments == 1).then_some(()) }
        },
    )
    .await;
    assert!(!a.store.has_segment(&entry.hash) && !path.exists());
    // With a good provider beside it, a fetch returns good bytes; the rotten one now
    // answers NotFound.
    let bytes = fetcher
        .fetch(
            &[(a.id(), addr), (good.id(), good_addr)],
            lib.id(),
            track,
            seg,
            entry.hash,
        )
        .await
        .unwrap();
    assert_eq!(SegmentHash::of(&bytes), entry.hash);
    let err = fetcher
        .fetch(&[(a.id(), addr)], lib.id(), track, seg, entry.hash)
        .await
        .unwrap_err();
    let FetchError::AllFailed(failures) = err else {
        panic!("expected AllFailed, got {err}");
    };
    assert!(
        matches!(failures[0].1, AttemptError::Status(Status::NotFound)),
        "{:?}",
        failures[0].1
    );
    // A report about a copy that checks out drops nothing.
    assert_eq!(good.store.corruption().segments, 0);
    server.shutdown_and_join().await;
    good_server.shutdown_and_join().await;
}

/// How a fake provider misbehaves.
#[derive(Clone, Copy, Debug)]
enum Evil {
    /// Announces the right length and hash, then sends other bytes.
    WrongBytes,
    /// Announces a hash other than the one requested.
    WrongHash,
    /// Announces a different length than the manifest's.
    WrongLength,
    /// Sends fewer bytes than announced.
    Truncated,
    /// Accepts the request and never answers.
    Silent,
}

/// A fake provider with a real node identity that answers every request its way.
fn evil_server(key: &SigningKey, lib: &Library, how: Evil) -> (quinn::Endpoint, SocketAddr) {
    let config = server_config(key, &limits()).unwrap();
    let endpoint = quinn::Endpoint::server(config, SERVE_ADDR.parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let manifest = lib.manifest.clone();
    let lib_bytes = std::sync::Arc::new(lib.bytes.clone());
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let (manifest, lib_bytes) = (manifest.clone(), lib_bytes.clone());
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let (manifest, lib_bytes) = (manifest.clone(), lib_bytes.clone());
                    tokio::spawn(async move {
                        let buf = recv.read_to_end(2048).await.unwrap();
                        let (req, _) = decode_request(&buf).unwrap().unwrap();
                        let entry = *manifest.resolve(req.track, &req.segment).unwrap();
                        let len = u64::from(entry.size);
                        let real = &lib_bytes[&entry.hash];
                        // The real outboard, so the bad bytes are caught group by group.
                        let (_, outboard) = reelnet_proto::Outboard::compute(real);
                        let mut junk = vec![0x5a; entry.size as usize];
                        let (header, body) = match how {
                            Evil::WrongBytes => (ResponseHeader::ok(len, entry.hash), junk),
                            Evil::WrongHash => {
                                (ResponseHeader::ok(len, SegmentHash::of(&junk)), junk)
                            }
                            Evil::WrongLength => {
                                junk.push(0);
                                (ResponseHeader::ok(len + 1, entry.hash), junk)
                            }
                            Evil::Truncated => {
                                // Good bytes, but only half of them.
                                junk = real[..real.len() / 2].to_vec();
                                (ResponseHeader::ok(len, entry.hash), junk)
                            }
                            Evil::Silent => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                        };
                        let _ = send
                            .write_all(&encode_response_header(&header).unwrap())
                            .await;
                        let _ = send.write_all(&outboard.to_bytes()).await;
                        let _ = send.write_all(&body).await;
                        let _ = send.finish();
                        let _ = send.stopped().await;
                    });
                }
            });
        }
    });
    (endpoint, addr)
}

#[tokio::test]
async fn bad_providers_are_rejected_and_the_next_one_serves() {
    let lib = Library::new(5);
    let good = TestNode::holding(1, &lib);
    let (server, good_addr) = good.serve(limits());
    let (track, seg, entry) = lib.all_refs()[3];

    for (i, how) in [
        Evil::WrongBytes,
        Evil::WrongHash,
        Evil::WrongLength,
        Evil::Truncated,
    ]
    .into_iter()
    .enumerate()
    {
        let evil_key = SigningKey::from_bytes(&[100 + i as u8; 32]);
        let evil_id = NodeId::from_verifying_key(&evil_key.verifying_key());
        let (evil_ep, evil_addr) = evil_server(&evil_key, &lib, how);
        let fetcher = fetcher(None, Duration::from_secs(5));

        // Alone, the bad provider yields an error, never its bytes.
        let err = fetcher
            .fetch_request(&[(evil_id, evil_addr)], &want(&lib, track, seg, &entry))
            .await
            .unwrap_err();
        eprintln!("{how:?}: {err}");
        let FetchError::AllFailed(failures) = err else {
            panic!("{how:?}: expected AllFailed");
        };
        let expected_kind = matches!(
            (&failures[0].1, how),
            (AttemptError::BadGroup { .. }, Evil::WrongBytes)
                | (AttemptError::AnnouncedHashMismatch { .. }, Evil::WrongHash)
                | (AttemptError::SizeMismatch { .. }, Evil::WrongLength)
                | (AttemptError::Truncated { .. }, Evil::Truncated)
        );
        assert!(expected_kind, "{how:?}: {:?}", failures[0].1);

        // Listed first beside a good provider: the fetch falls back and gets the right bytes.
        // (A fresh fetcher, so the bad provider's score does not reorder them.)
        let fetcher = self::fetcher(None, Duration::from_secs(5));
        let bytes = fetcher
            .fetch(
                &[(evil_id, evil_addr), (good.id(), good_addr)],
                lib.id(),
                track,
                seg,
                entry.hash,
            )
            .await
            .unwrap();
        assert_eq!(bytes.as_ref(), lib.bytes[&entry.hash].as_slice());
        assert!(fetcher.stats(&evil_id).unwrap().consecutive_failures > 0);
        // Having failed, the bad provider is now ranked after the good one.
        let started = Instant::now();
        fetcher
            .fetch(
                &[(evil_id, evil_addr), (good.id(), good_addr)],
                lib.id(),
                track,
                seg,
                entry.hash,
            )
            .await
            .unwrap();
        assert_eq!(fetcher.stats(&evil_id).unwrap().successes, 0);
        assert_eq!(fetcher.stats(&good.id()).unwrap().successes, 2);
        assert!(started.elapsed() < Duration::from_secs(2));
        evil_ep.close(0u32.into(), b"done");
    }
    server.shutdown_and_join().await;
}

#[tokio::test]
async fn down_or_silent_providers_fall_back_to_the_next() {
    let lib = Library::new(6);
    let good = TestNode::holding(1, &lib);
    let (server, good_addr) = good.serve(limits());
    let (track, seg, entry) = lib.all_refs()[4];

    // A closed port: bind, note the address, release it.
    let closed_addr = std::net::UdpSocket::bind(SERVE_ADDR)
        .unwrap()
        .local_addr()
        .unwrap();
    let down_id = TestNode::new(50).id();
    // A provider that accepts the request and never answers.
    let silent_key = SigningKey::from_bytes(&[51; 32]);
    let silent_id = NodeId::from_verifying_key(&silent_key.verifying_key());
    let (silent_ep, silent_addr) = evil_server(&silent_key, &lib, Evil::Silent);

    let timeout = Duration::from_millis(500);
    let fetcher = fetcher(None, timeout);
    let started = Instant::now();
    let bytes = fetcher
        .fetch(
            &[
                (down_id, closed_addr),
                (silent_id, silent_addr),
                (good.id(), good_addr),
            ],
            lib.id(),
            track,
            seg,
            entry.hash,
        )
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("fell back twice in {took:?}");
    assert_eq!(bytes.as_ref(), lib.bytes[&entry.hash].as_slice());
    assert!(took < timeout * 2 + Duration::from_secs(1), "{took:?}");
    assert!(fetcher.stats(&down_id).unwrap().consecutive_failures > 0);
    assert!(fetcher.stats(&silent_id).unwrap().consecutive_failures > 0);

    // Only failing providers: a clear error listing each.
    let err = fetcher
        .fetch(
            &[(down_id, closed_addr), (silent_id, silent_addr)],
            lib.id(),
            track,
            seg,
            entry.hash,
        )
        .await
        .unwrap_err();
    let FetchError::AllFailed(failures) = err else {
        panic!("expected AllFailed");
    };
    assert_eq!(failures.len(), 2);
    assert!(matches!(
        fetcher.fetch(&[], lib.id(), track, seg, entry.hash).await,
        Err(FetchError::NoProviders)
    ));
    silent_ep.close(0u32.into(), b"done");
    server.shutdown_and_join().await;
}

/// A raw client connection to a node, to send hand-made frames.
async fn raw_connection(node: NodeId, addr: SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto(&key).unwrap()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(addr, &server_name(&node))
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

/// Sends `bytes` on a new stream (then finishes it unless `keep_open`) and reads the answer.
async fn raw_request(
    conn: &quinn::Connection,
    bytes: &[u8],
    keep_open: bool,
) -> (ResponseHeader, Vec<u8>) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    // The server may stop reading (and answer) before all of an oversized frame is sent.
    let _ = send.write_all(bytes).await;
    if !keep_open {
        let _ = send.finish();
    }
    let all = tokio::time::timeout(Duration::from_secs(15), recv.read_to_end(64 << 20))
        .await
        .expect("answer in time")
        .unwrap();
    let (header, used) = decode_response_header(&all).unwrap().unwrap();
    (header, all[used..].to_vec())
}

#[tokio::test]
async fn malformed_requests_get_bad_request_and_the_server_carries_on() {
    let lib = Library::new(7);
    let a = TestNode::holding(1, &lib);
    let mut l = limits();
    l.request_timeout = Duration::from_secs(1);
    let (server, addr) = a.serve(l);
    let (_ep, conn) = raw_connection(a.id(), addr).await;
    let (track, seg, entry) = lib.all_refs()[1];
    let good = encode_request(&SegmentRequest {
        manifest: lib.id(),
        track,
        segment: seg,
    })
    .unwrap();

    let mut oversized = u32::MAX.to_be_bytes().to_vec();
    oversized.extend(std::iter::repeat_n(0u8, 64 << 10));
    let mut garbage = 10u32.to_be_bytes().to_vec();
    garbage.extend([0xff; 10]);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let mut trailing = good.clone();
    trailing.extend([1, 2, 3]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut random = vec![0u8; 300];
    rng.fill_bytes(&mut random);
    random[..FRAME_PREFIX_LEN].copy_from_slice(&296u32.to_be_bytes());

    for (what, frame) in [
        ("oversized length prefix", oversized),
        ("undecodable body", garbage),
        ("truncated frame", truncated),
        ("trailing bytes", trailing),
        ("random body", random),
        ("empty stream", Vec::new()),
    ] {
        let (header, body) = raw_request(&conn, &frame, false).await;
        assert_eq!(header.status, Status::BadRequest, "{what}");
        assert!(body.is_empty(), "{what}");
    }
    // A client that sends half a frame and stalls is answered after request_timeout.
    let (header, _) = raw_request(&conn, &good[..3], true).await;
    assert_eq!(header.status, Status::BadRequest, "stalled");

    // Well-formed but wrong: unknown manifest, track out of range, hash of another manifest.
    let other = Library::new(8);
    let (_, _, foreign) = other.all_refs()[0];
    for (what, req, status) in [
        (
            "unknown manifest",
            SegmentRequest {
                manifest: other.id(),
                track: 0,
                segment: SegmentRef::Init,
            },
            Status::NotFound,
        ),
        (
            "track out of range",
            SegmentRequest {
                manifest: lib.id(),
                track: 9,
                segment: SegmentRef::Init,
            },
            Status::BadRequest,
        ),
        (
            "index out of range",
            SegmentRequest {
                manifest: lib.id(),
                track: 0,
                segment: SegmentRef::Index(99),
            },
            Status::BadRequest,
        ),
        (
            "hash not in this manifest",
            SegmentRequest {
                manifest: lib.id(),
                track: 0,
                segment: SegmentRef::Hash(foreign.hash),
            },
            Status::BadRequest,
        ),
    ] {
        let (header, _) = raw_request(&conn, &encode_request(&req).unwrap(), false).await;
        assert_eq!(header.status, status, "{what}");
    }

    // The same connection still gets real answers.
    let (header, body) = raw_request(&conn, &good, false).await;
    assert_eq!(header.status, Status::Ok);
    assert_eq!(header.hash, entry.hash);
    assert_eq!(body, lib.bytes[&entry.hash]);
    server.shutdown_and_join().await;
}

#[tokio::test]
async fn overloaded_server_answers_busy() {
    let lib = Library::new(9);
    let a = TestNode::holding(1, &lib);
    let (server, addr) = a.serve(Limits {
        max_inflight: 0,
        ..limits()
    });
    let fetcher = fetcher(None, Duration::from_secs(5));
    let (track, seg, entry) = lib.all_refs()[0];
    let err = fetcher
        .fetch(&[(a.id(), addr)], lib.id(), track, seg, entry.hash)
        .await
        .unwrap_err();
    let FetchError::AllFailed(failures) = err else {
        panic!("expected AllFailed");
    };
    assert!(matches!(failures[0].1, AttemptError::Status(Status::Busy)));
    server.shutdown_and_join().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_responses_then_closes() {
    let lib = Library::new(10);
    let a = TestNode::holding(1, &lib);
    let (server, addr) = a.serve(limits());
    let fetcher = Arc::new(fetcher(None, Duration::from_secs(5)));
    let providers = vec![(a.id(), addr)];
    let lib = Arc::new(lib);
    // Warm the connection, then start a burst and shut down while it runs.
    let (track, seg, entry) = lib.all_refs()[0];
    fetcher
        .fetch(&providers, lib.id(), track, seg, entry.hash)
        .await
        .unwrap();
    let tasks: Vec<_> = lib
        .all_refs()
        .into_iter()
        .map(|(track, seg, entry)| {
            let (fetcher, providers, lib) = (fetcher.clone(), providers.clone(), lib.clone());
            tokio::spawn(async move {
                let r = fetcher
                    .fetch(&providers, lib.id(), track, seg, entry.hash)
                    .await;
                if let Ok(bytes) = &r {
                    assert_eq!(bytes.as_ref(), lib.bytes[&entry.hash].as_slice());
                }
                r.is_ok()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    server.shutdown_and_join().await;
    let took = started.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let mut ok = 0;
    for t in futures::future::join_all(tasks).await {
        ok += usize::from(t.unwrap());
    }
    eprintln!("{ok} fetches completed around shutdown");

    // After shutdown nothing answers: the fetch fails fast or by its timeout.
    let quick = self::fetcher(None, Duration::from_millis(300));
    let r = quick
        .fetch(&providers, lib.id(), track, seg, entry.hash)
        .await;
    assert!(r.is_err());
}

#[path = "common_membership/mod.rs"]
mod common_membership;

fn member_fetcher(key: &SigningKey, m: &reelnet_node::membership::Membership) -> Fetcher {
    Fetcher::with_membership(
        Some(key),
        FetcherConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            attempt_timeout: Duration::from_secs(5),
            transport: TransportTuning::loopback(),
            ..FetcherConfig::default()
        },
        Some(m),
    )
    .unwrap()
}

/// With membership, the segment service and the fetcher admit only members of the same
/// network (checked in the TLS handshake on both sides), an open member never gets a
/// premium rendition, and a revoked member is cut off.
#[tokio::test]
async fn only_members_connect_and_open_members_get_no_premium_renditions() {
    use reelnet_proto::membership::RoleName;
    let cancel = tokio_util::sync::CancellationToken::new();
    let net = common_membership::TestNetwork::new();
    let lib = Library::new(21);
    let a = TestNode::holding(21, &lib);
    let ma = net
        .membership(
            &a.key,
            Some(net.cert(&a.key, &[RoleName::Replica], false)),
            &cancel,
        )
        .await;
    // One premium rendition: track 0 (720p) is premium, track 1 (360p) is not.
    let (server, addr) = TransferServer::bind_with(
        SERVE_ADDR.parse().unwrap(),
        &a.key,
        a.store.clone(),
        limits(),
        Some(&ma),
        1,
    )
    .unwrap();
    let providers = [(a.id(), addr)];
    let seg = |track: usize| lib.manifest.tracks[track].segments[0].hash;
    async fn first(
        f: &Fetcher,
        providers: &[(NodeId, SocketAddr)],
        lib: &Library,
        track: u16,
    ) -> Result<bytes::Bytes, FetchError> {
        let want = lib.manifest.tracks[usize::from(track)].segments[0].hash;
        f.fetch(providers, lib.id(), track, SegmentRef::Index(0), want)
            .await
    }
    macro_rules! get {
        ($f:expr, $track:expr) => {
            first(&$f, &providers, &lib, $track)
        };
    }

    // An invited member gets everything.
    let kb = SigningKey::from_bytes(&[22; 32]);
    let mb = net
        .membership(&kb, Some(net.cert(&kb, &[RoleName::Edge], false)), &cancel)
        .await;
    let fb = member_fetcher(&kb, &mb);
    let started = Instant::now();
    assert!(
        get!(fb, 0).await.is_ok(),
        "premium rendition to an invited member"
    );
    println!("member connection + first segment: {:?}", started.elapsed());
    assert!(get!(fb, 1).await.is_ok());

    // An open member: no premium rendition node-to-node.
    let ko = SigningKey::from_bytes(&[23; 32]);
    let mo = net
        .membership(&ko, Some(net.cert(&ko, &[RoleName::Edge], true)), &cancel)
        .await;
    let fo = member_fetcher(&ko, &mo);
    match get!(fo, 0).await {
        Err(FetchError::AllFailed(failures)) => {
            assert!(
                failures
                    .iter()
                    .any(|(_, e)| matches!(e, AttemptError::Status(Status::Forbidden))),
                "{failures:?}"
            );
        }
        other => panic!("an open member got a premium rendition: {other:?}"),
    }
    assert!(
        get!(fo, 1).await.is_ok(),
        "open members get the free renditions"
    );

    // A stranger (a node key, no certificate) cannot even connect.
    let ks = SigningKey::from_bytes(&[24; 32]);
    let fs = fetcher(Some(&ks), Duration::from_secs(5));
    assert!(get!(fs, 1).await.is_err(), "a stranger was served");
    // A certificate of this network for another key does not help.
    let mx = net
        .membership(&ks, Some(net.cert(&kb, &[RoleName::Edge], false)), &cancel)
        .await;
    let fx = member_fetcher(&ks, &mx);
    assert!(
        get!(fx, 1).await.is_err(),
        "a borrowed certificate was accepted"
    );
    // And a member does not fetch from a server that is not a member.
    let stranger_server = TestNode::holding(25, &lib);
    let (plain, plain_addr) = stranger_server.serve(limits());
    let r = fb
        .fetch(
            &[(stranger_server.id(), plain_addr)],
            lib.id(),
            1,
            SegmentRef::Index(0),
            seg(1),
        )
        .await;
    assert!(r.is_err(), "a member fetched from a non-member");

    // B is revoked: its connection is closed and it cannot come back.
    let list = net.revocations(1, &[NodeId::from_verifying_key(&kb.verifying_key())]);
    assert_eq!(
        ma.offer_revocations(&list.encode()).await,
        reelnet_node::catalog::Verdict::Accepted
    );
    let (_, took) =
        reelnet_testkit::wait_for("B to be cut off", Duration::from_secs(10), || async {
            get!(fb, 1).await.is_err().then_some(())
        })
        .await;
    println!("revoked member cut off after {took:?}");
    assert!(get!(fo, 1).await.is_ok(), "others keep working");
    plain.shutdown_and_join().await;
    server.shutdown_and_join().await;
    cancel.cancel();
}

/// Sends a corruption report on its own stream and waits for the server's acknowledgement
/// (it stops the stream with `REPORT_ACK` once it has read and decided the report).
async fn raw_report(conn: &quinn::Connection, report: &reelnet_proto::CorruptReport) -> u32 {
    let frame = reelnet_proto::encode_report(report).unwrap();
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(&frame).await.unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(15), send.stopped())
        .await
        .expect("acknowledged in time")
        .unwrap();
    stopped
        .expect("stopped by the server, not just received")
        .into_inner() as u32
}

/// A peer that floods the server with corruption reports (about good copies, the same
/// ones over and over, and many distinct ones) cannot make it re-hash without bound: a
/// copy found good is not re-hashed again for a while, and each peer has a small re-check
/// budget. Every report is still acknowledged, and the server keeps serving.
#[tokio::test]
async fn a_flood_of_corruption_reports_costs_a_bounded_number_of_rechecks() {
    let lib = Library::new(6);
    let a = TestNode::holding(1, &lib);
    let (server, addr) = a.serve(limits());
    let (endpoint, conn) = raw_connection(a.id(), addr).await;
    let refs = lib.all_refs();
    let distinct: std::collections::HashSet<SegmentHash> = refs.iter().map(|r| r.2.hash).collect();
    const FLOOD: u64 = 300;
    for i in 0..FLOOD as usize {
        let (track, segment, entry) = refs[i % refs.len()];
        let report = reelnet_proto::CorruptReport {
            request: SegmentRequest {
                manifest: lib.id(),
                track,
                segment,
            },
            expected: entry.hash,
        };
        assert_eq!(
            raw_report(&conn, &report).await,
            reelnet_node::transfer::REPORT_ACK
        );
    }
    let stats = server.report_stats();
    assert_eq!(stats.received, FLOOD, "{stats:?}");
    // At most one re-check per distinct copy (queued, then known good): far below the
    // flood. (The per-peer budget, which bounds reports about ever new copies, is tested
    // with injected time in `transfer::reports`.)
    assert!(
        stats.admitted <= distinct.len() as u64,
        "{stats:?} for {} distinct copies",
        distinct.len()
    );
    assert!(stats.admitted >= 1, "{stats:?}");
    assert_eq!(
        stats.received,
        stats.admitted + stats.duplicate + stats.refused,
        "{stats:?}"
    );
    // Nothing good was dropped, and the server still answers.
    assert_eq!(a.store.corruption().segments, 0);
    let fetcher = fetcher(None, Duration::from_secs(5));
    let (track, seg, entry) = refs[3];
    let bytes = fetcher
        .fetch(&[(a.id(), addr)], lib.id(), track, seg, entry.hash)
        .await
        .unwrap();
    assert_eq!(SegmentHash::of(&bytes), entry.hash);
    endpoint.close(0u32.into(), b"done");
    server.shutdown_and_join().await;
}
