//! Test support for the gateway: a gateway served over HTTP on 127.0.0.1 with its own
//! catalog actor, store and QUIC fetcher; real QUIC segment providers (and misbehaving
//! ones); signed manifests with random segment bytes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand::{RngCore, SeedableRng};
use reelnet_node::catalog::{Catalog, CatalogConfig};
use reelnet_node::gateway;
use reelnet_node::metrics::Metrics;
use reelnet_node::store::Store;
use reelnet_node::transfer::server::server_config;
use reelnet_node::transfer::{Fetcher, FetcherConfig, Limits, TransferServer, TransportTuning};
use reelnet_proto::catalog::Held;
use reelnet_proto::transfer::{decode_request, encode_response_header, ResponseHeader};
use reelnet_proto::{
    CatalogRecord, Claims, Container, Manifest, ManifestId, MovieId, NodeId, Rendition,
    SegmentEntry, SegmentHash, SignedCatalogRecord, SignedManifest, Tier, Track,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A signed two-track fMP4 manifest and the bytes of every segment it lists.
#[derive(Clone)]
pub struct Library {
    pub key: SigningKey,
    pub signed: SignedManifest,
    pub manifest: Manifest,
    pub bytes: HashMap<SegmentHash, Vec<u8>>,
    seed: u64,
}

fn entry(
    rng: &mut rand::rngs::StdRng,
    bytes: &mut HashMap<SegmentHash, Vec<u8>>,
    len: usize,
    duration_ms: u32,
) -> SegmentEntry {
    let mut b = vec![0u8; len];
    rng.fill_bytes(&mut b);
    let hash = SegmentHash::of(&b);
    bytes.insert(hash, b);
    SegmentEntry {
        hash,
        duration_ms,
        size: len as u32,
    }
}

impl Library {
    pub fn new(seed: u64, complete: bool, segments: usize) -> Self {
        Self::with_movie(seed, MovieId::from_tmdb(603), complete, segments)
    }

    pub fn with_movie(seed: u64, movie: MovieId, complete: bool, segments: usize) -> Self {
        Self::sized(seed, movie, complete, segments, [200_000, 60_000])
    }

    /// A library whose tracks' media segments are about `sizes[track]` bytes each.
    pub fn sized(
        seed: u64,
        movie: MovieId,
        complete: bool,
        segments: usize,
        sizes: [usize; 2],
    ) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let key = SigningKey::generate(&mut rng);
        let mut bytes = HashMap::new();
        let mut tracks = Vec::new();
        for (name, height, seg_len) in [("720p", 720u32, sizes[0]), ("360p", 360, sizes[1])] {
            let init = entry(&mut rng, &mut bytes, 700, 0);
            let segs = (0..segments)
                .map(|i| entry(&mut rng, &mut bytes, seg_len + i * 1000, 4000))
                .collect();
            tracks.push(Track {
                kind: reelnet_proto::manifest::TrackKind::Video,
                media: None,
                rendition: Rendition {
                    name: name.into(),
                    width: height * 16 / 9,
                    height,
                    bandwidth: 1_000_000,
                    codecs: "avc1.64001f,mp4a.40.2".into(),
                    frame_rate_milli: 25_000,
                },
                init: Some(init),
                segments: segs,
            });
        }
        let mut ingest_id = [0u8; 16];
        rng.fill_bytes(&mut ingest_id);
        let manifest = Manifest {
            version: reelnet_proto::manifest::MANIFEST_VERSION,
            movie,
            title: "The Matrix".into(),
            year: Some(1999),
            origin: NodeId::from_verifying_key(&key.verifying_key()),
            ingest_id,
            seq: 1,
            created_at: reelnet_node::unix_now(),
            container: Container::Fmp4,
            target_duration_ms: 4000,
            tracks,
            complete,
            meta: Default::default(),
        };
        let signed = SignedManifest::sign(&manifest, &key).unwrap();
        Self {
            key,
            signed,
            manifest,
            bytes,
            seed,
        }
    }

    /// The next version of this ingest: `more` media segments appended to every track.
    pub fn grown(&self, more: usize, complete: bool) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ 0x9e37_79b9);
        let mut next = self.clone();
        for track in &mut next.manifest.tracks {
            for i in 0..more {
                let e = entry(&mut rng, &mut next.bytes, 50_000 + i, 4000);
                track.segments.push(e);
            }
        }
        next.manifest.seq += 1;
        next.manifest.complete = complete;
        next.signed = SignedManifest::sign(&next.manifest, &self.key).unwrap();
        next
    }

    pub fn id(&self) -> ManifestId {
        self.signed.id()
    }
}

/// How a misbehaving provider answers.
#[derive(Debug, Clone, Copy)]
pub enum Evil {
    /// Right header, wrong bytes.
    WrongBytes,
    /// Sends half the bytes, then drops the connection (a node dying mid-segment).
    Truncated,
    /// The real outboard and bytes, with one bit flipped at this offset of the body.
    CorruptAt(usize),
    /// The real outboard and the first half of the bytes; the rest once the gate opens.
    Gated(&'static tokio::sync::Notify),
}

/// A QUIC segment provider with its own key and store.
pub struct Provider {
    pub key: SigningKey,
    pub store: Store,
    pub addr: SocketAddr,
    pub server: ProviderServer,
    _dir: tempfile::TempDir,
}

pub enum ProviderServer {
    Real(TransferServer),
    Evil(quinn::Endpoint),
}

impl ProviderServer {
    pub fn shutdown(&self) {
        match self {
            Self::Real(s) => s.shutdown(),
            Self::Evil(e) => e.close(0u32.into(), b"bye"),
        }
    }
}

fn limits() -> Limits {
    Limits {
        transport: TransportTuning::loopback(),
        ..Limits::default()
    }
}

impl Provider {
    fn keyed(seed: u8) -> (SigningKey, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (SigningKey::from_bytes(&[seed; 32]), store, dir)
    }

    /// A real segment server holding all of `lib`.
    pub fn holding(seed: u8, lib: &Library) -> Self {
        let (key, store, dir) = Self::keyed(seed);
        store.put_manifest(&lib.signed).unwrap();
        for b in lib.bytes.values() {
            store.put_segment(b, None).unwrap();
        }
        let (server, addr) = TransferServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            &key,
            store.clone(),
            limits(),
        )
        .unwrap();
        Self {
            key,
            store,
            addr,
            server: ProviderServer::Real(server),
            _dir: dir,
        }
    }

    /// A provider with a real node identity that answers every request `how`.
    pub fn evil(seed: u8, lib: &Library, how: Evil) -> Self {
        let (key, store, dir) = Self::keyed(seed);
        let config = server_config(&key, &limits()).unwrap();
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let manifest = lib.manifest.clone();
        let lib_bytes = Arc::new(lib.bytes.clone());
        let ep = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                let (manifest, lib_bytes) = (manifest.clone(), lib_bytes.clone());
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let buf = recv.read_to_end(2048).await.unwrap();
                        let (req, _) = decode_request(&buf).unwrap().unwrap();
                        let entry = *manifest.resolve(req.track, &req.segment).unwrap();
                        let len = u64::from(entry.size);
                        let mut junk = vec![0x5a; entry.size as usize];
                        let header =
                            encode_response_header(&ResponseHeader::ok(len, entry.hash)).unwrap();
                        let _ = send.write_all(&header).await;
                        let real = lib_bytes[&entry.hash].clone();
                        let outboard = reelnet_proto::Outboard::compute(&real).1.to_bytes();
                        match how {
                            Evil::CorruptAt(at) => {
                                let mut body = real;
                                body[at] ^= 1;
                                let _ = send.write_all(&outboard).await;
                                let _ = send.write_all(&body).await;
                                let _ = send.finish();
                                let _ = send.stopped().await;
                            }
                            Evil::Gated(gate) => {
                                let half = real.len() / 2;
                                let _ = send.write_all(&outboard).await;
                                let _ = send.write_all(&real[..half]).await;
                                gate.notified().await;
                                let _ = send.write_all(&real[half..]).await;
                                let _ = send.finish();
                                let _ = send.stopped().await;
                            }
                            Evil::WrongBytes => {
                                let _ = send.write_all(&junk).await;
                                let _ = send.finish();
                                let _ = send.stopped().await;
                            }
                            Evil::Truncated => {
                                junk.truncate(junk.len() / 2);
                                let _ = send.write_all(&junk).await;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                conn.close(1u32.into(), b"dying");
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self {
            key,
            store,
            addr,
            server: ProviderServer::Evil(endpoint),
            _dir: dir,
        }
    }

    pub fn id(&self) -> NodeId {
        NodeId::from_verifying_key(&self.key.verifying_key())
    }

    /// The node id a provider made with `seed` has.
    pub fn id_of(seed: u8) -> NodeId {
        NodeId::from_verifying_key(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
    }
}

/// A gateway on 127.0.0.1 with its own store, catalog and fetcher.
pub struct Gateway {
    pub url: String,
    pub addr: SocketAddr,
    pub store: Store,
    pub catalog: Catalog,
    pub key: SigningKey,
    pub client: reqwest::Client,
    pub tokens: Arc<gateway::token::PlaybackTokens>,
    pub fetcher: Arc<Fetcher>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    record_seq: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
}

pub fn claims(sub: &str) -> Claims {
    let now = reelnet_node::unix_now();
    Claims {
        sub: sub.into(),
        email: format!("{sub}@example.test"),
        tier: Tier::Free,
        tier_until: None,
        email_verified: true,
        role: Default::default(),
        exp: now + 600,
        iat: now,
        iss: "reelnet-tracker".into(),
        aud: "reelnet".into(),
        jti: "j".into(),
        sid: None,
        scope: None,
    }
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with_hot_cache(reelnet_node::config::DEFAULT_HOT_CACHE_MIB as usize).await
    }

    /// A gateway whose hot-segment cache holds `hot_mib` MiB.
    pub async fn start_with_hot_cache(hot_mib: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[200; 32]);
        let cancel = CancellationToken::new();
        let (catalog, catalog_task) = Catalog::start(CatalogConfig::default(), cancel.clone());
        let fetcher = Arc::new(
            Fetcher::with_config(
                Some(&key),
                FetcherConfig {
                    bind: "127.0.0.1:0".parse().unwrap(),
                    attempt_timeout: Duration::from_secs(3),
                    transport: TransportTuning::loopback(),
                    ..FetcherConfig::default()
                },
            )
            .unwrap(),
        );
        let metrics = Arc::new(Metrics::new(0));
        let (hot, hot_task) = gateway::hot::HotSegments::start(hot_mib << 20, cancel.clone());
        let (fetches, fetches_task) = gateway::hls::PeerFetches::start(
            fetcher.clone(),
            store.clone(),
            hot.clone(),
            metrics.clone(),
            cancel.clone(),
        );
        let tokens = Arc::new(gateway::token::PlaybackTokens::from_secret([9; 32], 3600));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let state = gateway::GatewayState::for_tests(
            NodeId::from_verifying_key(&key.verifying_key()),
            metrics,
            dir.path().to_owned(),
            url.clone(),
            store.clone(),
            catalog.clone(),
            fetcher.clone(),
            fetches,
            hot,
            tokens.clone(),
            cancel.clone(),
        );
        let routes = gateway::routes(state);
        let stop = cancel.clone();
        let server = tokio::spawn(async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move { stop.cancelled().await })
                .run()
                .await;
        });
        Self {
            url,
            addr,
            store,
            catalog,
            key,
            client: reqwest::Client::new(),
            tokens,
            fetcher,
            cancel,
            tasks: vec![server, catalog_task, fetches_task, hot_task],
            record_seq: std::sync::atomic::AtomicU64::new(1),
            _dir: dir,
        }
    }

    pub fn id(&self) -> NodeId {
        NodeId::from_verifying_key(&self.key.verifying_key())
    }

    /// Puts the whole of `lib` into this gateway's own store.
    pub fn hold(&self, lib: &Library) {
        self.store.put_manifest(&lib.signed).unwrap();
        for b in lib.bytes.values() {
            self.store.put_segment(b, None).unwrap();
        }
    }

    /// Makes the catalog know `lib` and that this gateway's node holds it.
    pub async fn announce_self(&self, lib: &Library) {
        self.announce_self_all(&[lib]).await
    }

    pub async fn announce_self_all(&self, libs: &[&Library]) {
        for lib in libs {
            self.catalog
                .offer_manifest(lib.signed.clone())
                .await
                .unwrap();
        }
        let seq = self
            .record_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let record = record(
            self.id(),
            "127.0.0.1:9".parse().unwrap(),
            &self.url,
            libs,
            seq,
        );
        let signed = SignedCatalogRecord::sign(&record, &self.key).unwrap();
        self.catalog.offer_record(signed).await.unwrap();
    }

    /// Makes the catalog know `lib` and that `provider` holds it.
    pub async fn announce(&self, provider: &Provider, lib: &Library, seq: u64) {
        self.catalog
            .offer_manifest(lib.signed.clone())
            .await
            .unwrap();
        let record = record(
            provider.id(),
            provider.addr,
            "http://127.0.0.1:9",
            &[lib],
            seq,
        );
        let signed = SignedCatalogRecord::sign(&record, &provider.key).unwrap();
        self.catalog.offer_record(signed).await.unwrap();
    }

    /// A premium viewer's token (every rendition).
    pub fn token(&self, movie: &MovieId) -> String {
        let mut c = claims("user-1");
        c.tier = Tier::Premium;
        self.tokens.issue(&c, movie, 600).unwrap().0
    }

    /// A free viewer's token (the top rendition is premium-only).
    pub fn token_free(&self, movie: &MovieId) -> String {
        self.tokens.issue(&claims("user-2"), movie, 600).unwrap().0
    }

    pub fn token_expired(&self, movie: &MovieId) -> String {
        let now = reelnet_node::unix_now();
        self.tokens
            .issue_at(&claims("user-1"), movie, now - 1000, 10)
            .unwrap()
            .0
    }

    pub fn foreign_token(&self, movie: &MovieId) -> String {
        gateway::token::PlaybackTokens::from_secret([10; 32], 3600)
            .issue(&claims("user-1"), movie, 600)
            .unwrap()
            .0
    }

    /// The hash and URL of media segment `index` of `track`.
    pub fn media_url(
        &self,
        lib: &Library,
        track: usize,
        index: usize,
        token: &str,
    ) -> (SegmentHash, String) {
        let t = &lib.manifest.tracks[track];
        let hash = t.segments[index].hash;
        let url = format!(
            "{}/hls/{}/{}/{}/{hash}.m4s?token={token}",
            self.url,
            lib.manifest.movie,
            lib.id(),
            t.rendition.name
        );
        (hash, url)
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client.get(url).send().await.unwrap()
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get(&format!("{}/metrics", self.url))
            .await
            .text()
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

fn record(
    node: NodeId,
    quic_addr: SocketAddr,
    gateway_url: &str,
    libs: &[&Library],
    seq: u64,
) -> CatalogRecord {
    let now = reelnet_node::unix_now();
    CatalogRecord {
        node,
        quic_addr: quic_addr.to_string(),
        gateway_url: gateway_url.into(),
        held: libs
            .iter()
            .map(|lib| Held {
                manifest: lib.id(),
                movie: lib.manifest.movie.clone(),
                complete: true,
                ranges: vec![],
            })
            .collect(),
        seq,
        issued_at: now,
        expires_at: now + 600,
        replica: true,
        certificate: Vec::new(),
    }
}

/// The segment URIs (init from `EXT-X-MAP`, then media) of a media playlist.
pub fn segment_uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            out.push(rest.trim_end_matches('"').to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push(line.to_owned());
        }
    }
    out
}

/// A GET with the path sent exactly as given (no client-side normalisation).
pub async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
