//! Property tests: arbitrary values round-trip; arbitrary valid values sign and verify.
#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use proptest::collection::vec;
use proptest::prelude::*;
use reelnet_proto::codec::{self, MAX_CATALOG_RECORD_BYTES, MAX_MANIFEST_BYTES};
use reelnet_proto::*;

fn hash32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn movie_id() -> impl Strategy<Value = MovieId> {
    prop_oneof![
        any::<u64>().prop_map(MovieId::from_tmdb),
        ("\\PC{0,40}", any::<Option<u16>>()).prop_map(|(t, y)| MovieId::derive(&t, y)),
        "[a-z0-9][a-z0-9-]{0,63}".prop_map(|s| MovieId::new(s).unwrap()),
    ]
}

fn entry() -> impl Strategy<Value = SegmentEntry> {
    (hash32(), 1..=60_000u32, 1..=(32u32 << 20)).prop_map(|(h, duration_ms, size)| SegmentEntry {
        hash: SegmentHash(h),
        duration_ms,
        size,
    })
}

fn rendition(index: usize) -> impl Strategy<Value = Rendition> {
    (
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}",
        prop_oneof![Just((0u32, 0u32)), (1..=16_384u32, 1..=16_384u32)],
        1..=u32::MAX,
        "[A-Za-z0-9.,+_-]{1,60}",
        0..=1_000_000u32,
    )
        .prop_map(
            move |(name, (width, height), bandwidth, codecs, fps)| Rendition {
                // Names must be unique within a manifest.
                name: format!("{name}{index}"),
                width,
                height,
                bandwidth,
                codecs,
                frame_rate_milli: fps,
            },
        )
}

fn track(index: usize, fmp4: bool) -> impl Strategy<Value = Track> {
    let init = if fmp4 {
        entry().prop_map(Some).boxed()
    } else {
        proptest::option::of(entry()).boxed()
    };
    (rendition(index), init, vec(entry(), 1..20)).prop_map(|(rendition, init, segments)| Track {
        kind: reelnet_proto::manifest::TrackKind::Video,
        media: None,
        rendition,
        init,
        segments,
    })
}

/// Manifests that pass `validate()`, origin set to `key`'s node.
fn valid_manifest() -> impl Strategy<Value = (Manifest, SigningKey)> {
    (any::<bool>(), 1..=8usize)
        .prop_flat_map(|(fmp4, n)| {
            let tracks: Vec<_> = (0..n).map(|i| track(i, fmp4)).collect();
            (
                Just(fmp4),
                tracks,
                movie_id(),
                "[^\\p{Cc}]{1,100}",
                proptest::option::of(1870..=2999u16),
                any::<[u8; 32]>(),
                any::<[u8; 16]>(),
                any::<(u64, u64, bool)>(),
                1..=60_000u32,
            )
        })
        .prop_map(
            |(
                fmp4,
                tracks,
                movie,
                title,
                year,
                seed,
                ingest_id,
                (seq, created_at, complete),
                target,
            )| {
                let key = SigningKey::from_bytes(&seed);
                let m = Manifest {
                    version: reelnet_proto::manifest::MANIFEST_VERSION,
                    movie,
                    title,
                    year,
                    origin: NodeId::from_verifying_key(&key.verifying_key()),
                    ingest_id,
                    seq,
                    created_at,
                    container: if fmp4 {
                        Container::Fmp4
                    } else {
                        Container::MpegTs
                    },
                    target_duration_ms: target,
                    tracks,
                    complete,
                    meta: Default::default(),
                };
                (m, key)
            },
        )
}

/// Manifests with arbitrary (not necessarily valid) contents, for the codec alone.
fn any_manifest() -> impl Strategy<Value = Manifest> {
    let rendition = (".{0,20}", any::<(u32, u32, u32)>(), ".{0,30}", any::<u32>()).prop_map(
        |(name, (width, height, bandwidth), codecs, frame_rate_milli)| Rendition {
            name,
            width,
            height,
            bandwidth,
            codecs,
            frame_rate_milli,
        },
    );
    let entry = || {
        (hash32(), any::<u32>(), any::<u32>()).prop_map(|(h, d, s)| SegmentEntry {
            hash: SegmentHash(h),
            duration_ms: d,
            size: s,
        })
    };
    let track = (
        rendition,
        proptest::option::of(entry()),
        vec(entry(), 0..10),
    )
        .prop_map(|(rendition, init, segments)| Track {
            kind: reelnet_proto::manifest::TrackKind::Video,
            media: None,
            rendition,
            init,
            segments,
        });
    (
        any::<u8>(),
        movie_id(),
        ".{0,50}",
        any::<Option<u16>>(),
        hash32(),
        any::<[u8; 16]>(),
        any::<(u64, u64, u32, bool, bool)>(),
        vec(track, 0..4),
    )
        .prop_map(
            |(
                version,
                movie,
                title,
                year,
                origin,
                ingest_id,
                (seq, created_at, target, ts, complete),
                tracks,
            )| {
                Manifest {
                    version,
                    movie,
                    title,
                    year,
                    origin: NodeId(origin),
                    ingest_id,
                    seq,
                    created_at,
                    container: if ts {
                        Container::MpegTs
                    } else {
                        Container::Fmp4
                    },
                    target_duration_ms: target,
                    tracks,
                    complete,
                    meta: Default::default(),
                }
            },
        )
}

fn held(index: u32) -> impl Strategy<Value = Held> {
    let range = (any::<u16>(), any::<u32>(), 1..=u32::MAX)
        .prop_map(|(track, a, b)| (track, a.min(b - 1), b))
        .prop_map(|(track, start, end)| SegmentRange { track, start, end });
    (hash32(), movie_id(), any::<bool>(), vec(range, 0..8)).prop_map(
        move |(mut id, movie, complete, ranges)| {
            // Unique manifest ids within a record.
            id[..4].copy_from_slice(&index.to_le_bytes());
            Held {
                manifest: ManifestId(id),
                movie,
                complete,
                ranges: if complete { vec![] } else { ranges },
            }
        },
    )
}

/// Catalog records that pass `validate()`, and a `now` at which they are live.
fn valid_record() -> impl Strategy<Value = (CatalogRecord, SigningKey, u64)> {
    let addr = prop_oneof![
        (1..=223u8, any::<[u8; 3]>(), 1..=u16::MAX)
            .prop_map(|(a, [b, c, d], p)| format!("{a}.{b}.{c}.{d}:{p}")),
        (1..=u16::MAX, 1..=u16::MAX).prop_map(|(x, p)| format!("[fd00::{x:x}]:{p}")),
    ];
    let url = (
        "https?",
        "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,10}){0,3}",
        "(:[1-9][0-9]{0,3})?",
        "/?",
    )
        .prop_map(|(s, h, p, slash)| format!("{s}://{h}{p}{slash}"));
    (0..20u32)
        .prop_flat_map(move |n| {
            let held: Vec<_> = (0..n).map(held).collect();
            (
                any::<[u8; 32]>(),
                addr.clone(),
                url.clone(),
                held,
                any::<u64>(),
                0..u64::MAX / 2,
                1..=24 * 3600u64,
            )
        })
        .prop_map(
            |(seed, quic_addr, gateway_url, held, seq, issued_at, ttl)| {
                let key = SigningKey::from_bytes(&seed);
                let r = CatalogRecord {
                    node: NodeId::from_verifying_key(&key.verifying_key()),
                    quic_addr,
                    gateway_url,
                    held,
                    seq,
                    issued_at,
                    expires_at: issued_at + ttl,
                    replica: true,
                    certificate: Vec::new(),
                };
                (r, key, issued_at)
            },
        )
}

fn segment_request() -> impl Strategy<Value = SegmentRequest> {
    let seg = prop_oneof![
        Just(SegmentRef::Init),
        any::<u32>().prop_map(SegmentRef::Index),
        hash32().prop_map(|h| SegmentRef::Hash(SegmentHash(h))),
    ];
    (hash32(), any::<u16>(), seg).prop_map(|(m, track, segment)| SegmentRequest {
        manifest: ManifestId(m),
        track,
        segment,
    })
}

fn response_header() -> impl Strategy<Value = ResponseHeader> {
    prop_oneof![
        (0..=MAX_SEGMENT_BYTES, hash32())
            .prop_map(|(len, h)| ResponseHeader::ok(len, SegmentHash(h))),
        prop_oneof![
            Just(Status::NotFound),
            Just(Status::Busy),
            Just(Status::BadRequest),
            Just(Status::Internal)
        ]
        .prop_map(ResponseHeader::error),
    ]
}

proptest! {
    #[test]
    fn manifest_codec_round_trips(m in any_manifest()) {
        let bytes = codec::encode::<_, MAX_MANIFEST_BYTES>(&m).unwrap();
        prop_assert_eq!(codec::decode::<Manifest, MAX_MANIFEST_BYTES>(&bytes).unwrap(), m);
    }

    #[test]
    fn signed_manifest_round_trips((m, key) in valid_manifest()) {
        let sm = SignedManifest::sign(&m, &key).unwrap();
        let bytes = sm.encode();
        let back = SignedManifest::decode(&bytes).unwrap();
        prop_assert_eq!(back.id(), ManifestId::of_signed_bytes(&bytes));
        prop_assert_eq!(&back, &sm);
        prop_assert_eq!(back.verify().unwrap(), m);
    }

    #[test]
    fn catalog_record_round_trips((r, key, now) in valid_record()) {
        let bytes = codec::encode::<_, MAX_CATALOG_RECORD_BYTES>(&r).unwrap();
        prop_assert_eq!(&codec::decode::<CatalogRecord, MAX_CATALOG_RECORD_BYTES>(&bytes).unwrap(), &r);
        let s = SignedCatalogRecord::sign(&r, &key).unwrap();
        let back = SignedCatalogRecord::decode(&s.encode()).unwrap();
        prop_assert_eq!(back.verify(now).unwrap(), r.clone());
        prop_assert!(back.verify(r.expires_at + reelnet_proto::catalog::SKEW_TOLERANCE_SECS).is_err());
    }

    #[test]
    fn segment_request_round_trips(req in segment_request(), tail in vec(any::<u8>(), 0..8)) {
        let mut bytes = encode_request(&req).unwrap();
        let len = bytes.len();
        prop_assert!(len <= 4 + MAX_REQUEST_FRAME);
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(decode_request(&bytes).unwrap(), Some((req, len)));
    }

    #[test]
    fn response_header_round_trips(h in response_header()) {
        let bytes = encode_response_header(&h).unwrap();
        prop_assert_eq!(decode_response_header(&bytes).unwrap(), Some((h, bytes.len())));
    }

    #[test]
    fn ids_parse_their_display(h in hash32()) {
        prop_assert_eq!(SegmentHash(h).to_string().parse::<SegmentHash>().unwrap(), SegmentHash(h));
        prop_assert_eq!(NodeId(h).to_string().parse::<NodeId>().unwrap(), NodeId(h));
        prop_assert_eq!(ManifestId(h).to_string().parse::<ManifestId>().unwrap(), ManifestId(h));
    }

    #[test]
    fn movie_id_accepts_exactly_the_pattern(s in prop_oneof!["\\PC{0,70}", "[a-z0-9-]{0,70}"]) {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        prop_assert_eq!(MovieId::new(s.clone()).is_ok(), ok, "{:?}", s);
    }

    #[test]
    fn decoders_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = SignedManifest::decode(&bytes).map(|s| s.verify());
        let _ = SignedCatalogRecord::decode(&bytes).map(|s| s.verify(0));
        let _ = codec::decode::<Manifest, MAX_MANIFEST_BYTES>(&bytes);
        let _ = decode_request(&bytes);
        let _ = decode_response_header(&bytes);
    }
}
