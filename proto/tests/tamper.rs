//! Forged, corrupted or stale content is rejected.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reelnet_proto::codec::{self, MAX_MANIFEST_BYTES};
use reelnet_proto::*;

/// A named mutation of a valid value that must make it invalid.
type Case<T> = (&'static str, Box<dyn Fn(&mut T)>);

/// Flips every bit of `bytes` in turn and asserts `accept` rejects each result.
fn every_bit_flip_rejected(bytes: &[u8], accept: impl Fn(&[u8]) -> bool) {
    let mut bad = bytes.to_vec();
    for i in 0..bad.len() {
        for bit in 0..8 {
            bad[i] ^= 1 << bit;
            assert!(!accept(&bad), "flip of byte {i} bit {bit} was accepted");
            bad[i] ^= 1 << bit;
        }
    }
    assert!(accept(&bad), "the untouched bytes must be accepted");
}

#[test]
fn any_bit_flip_in_signed_manifest_is_rejected() {
    let k = key(1);
    let bytes = SignedManifest::sign(&manifest(&k), &k).unwrap().encode();
    every_bit_flip_rejected(&bytes, |b| {
        SignedManifest::decode(b).is_ok_and(|sm| sm.verify().is_ok())
    });
}

#[test]
fn any_bit_flip_in_signed_catalog_record_is_rejected() {
    let k = key(2);
    let bytes = SignedCatalogRecord::sign(&record(&k), &k).unwrap().encode();
    every_bit_flip_rejected(&bytes, |b| {
        SignedCatalogRecord::decode(b).is_ok_and(|s| s.verify(NOW).is_ok())
    });
}

#[test]
fn any_bit_flip_in_segment_bytes_fails_hash() {
    let seg: Vec<u8> = (0..=255u8).cycle().take(1500).collect();
    let h = SegmentHash::of(&seg);
    every_bit_flip_rejected(&seg, |b| h.verify(b).is_ok());
    let mut bad = seg.clone();
    bad[0] ^= 1;
    assert!(matches!(
        h.verify(&bad),
        Err(ProtoError::HashMismatch { expected, .. }) if expected == h
    ));
    assert!(h.verify(&seg[..1499]).is_err());
}

#[test]
fn signer_must_be_origin() {
    let (alice, mallory) = (key(1), key(9));
    let m = manifest(&alice);
    assert!(matches!(
        SignedManifest::sign(&m, &mallory),
        Err(ProtoError::SignerMismatch { .. })
    ));
    assert!(matches!(
        SignedCatalogRecord::sign(&record(&alice), &mallory),
        Err(ProtoError::SignerMismatch { .. })
    ));

    // Mallory signs a manifest naming Alice as origin by hand: verify must refuse it.
    let mut forged = manifest(&mallory);
    let good = SignedManifest::sign(&forged, &mallory).unwrap();
    forged.origin = node_id(&alice);
    let forged_body = codec::encode::<_, MAX_MANIFEST_BYTES>(&forged).unwrap();
    let mut bytes = good.encode();
    // Same length body (only the origin key differs), so splice it in place.
    let start = bytes.len() - 64 - forged_body.len();
    bytes[start..start + forged_body.len()].copy_from_slice(&forged_body);
    let sm = SignedManifest::decode(&bytes).unwrap();
    assert!(matches!(sm.verify(), Err(ProtoError::BadSignature { .. })));
}

#[test]
fn signature_of_one_kind_does_not_verify_another() {
    // A catalog record's envelope is structurally a manifest envelope; the context and the
    // body format keep it from verifying as one.
    let k = key(2);
    let rec = SignedCatalogRecord::sign(&record(&k), &k).unwrap().encode();
    if let Ok(sm) = SignedManifest::decode(&rec) {
        assert!(sm.verify().is_err());
    }
}

#[test]
fn expired_and_future_records_are_rejected() {
    let k = key(2);
    let r = record(&k);
    let s = SignedCatalogRecord::sign(&r, &k).unwrap();
    assert!(s.verify(r.expires_at - 1).is_ok());
    // A receiver 300 s ahead of the sender still takes it (clock skew, plus 30 s of
    // transit slack), not beyond.
    assert!(s.verify(r.expires_at + 329).is_ok(), "within clock skew");
    assert!(matches!(
        s.verify(r.expires_at + 330),
        Err(ProtoError::Expired { .. })
    ));
    assert!(matches!(
        s.verify(r.expires_at + 1000),
        Err(ProtoError::Expired { .. })
    ));
    assert!(matches!(
        s.verify(r.issued_at - 331),
        Err(ProtoError::NotYetValid { .. })
    ));
    assert!(s.verify(r.issued_at - 300).is_ok(), "within clock skew");
}

#[test]
fn invalid_records_cannot_be_signed() {
    let k = key(2);
    let cases: Vec<Case<CatalogRecord>> = vec![
        (
            "issued after expiry",
            Box::new(|r| r.issued_at = r.expires_at + 1),
        ),
        (
            "ttl too long",
            Box::new(|r| r.expires_at = r.issued_at + 24 * 3600 + 1),
        ),
        (
            "bad addr",
            Box::new(|r| r.quic_addr = "localhost:7400".into()),
        ),
        ("port 0", Box::new(|r| r.quic_addr = "127.0.0.1:0".into())),
        (
            "unspecified",
            Box::new(|r| r.quic_addr = "0.0.0.0:7400".into()),
        ),
        ("ftp url", Box::new(|r| r.gateway_url = "ftp://x".into())),
        ("no host", Box::new(|r| r.gateway_url = "http:///x".into())),
        (
            "space in url",
            Box::new(|r| r.gateway_url = "http://a b".into()),
        ),
        (
            "path in url",
            Box::new(|r| r.gateway_url = "http://127.0.0.1:8080/admin".into()),
        ),
        (
            "query in url",
            Box::new(|r| r.gateway_url = "http://127.0.0.1:8080?x=1".into()),
        ),
        (
            "userinfo in url",
            Box::new(|r| r.gateway_url = "http://me@127.0.0.1:8080".into()),
        ),
        (
            "fragment in url",
            Box::new(|r| r.gateway_url = "http://127.0.0.1:8080#x".into()),
        ),
        (
            "long url",
            Box::new(|r| r.gateway_url = format!("http://{}", "a".repeat(2048))),
        ),
        (
            "dup manifest",
            Box::new(|r| r.held[1].manifest = r.held[0].manifest),
        ),
        (
            "complete+ranges",
            Box::new(|r| r.held[0].ranges = r.held[1].ranges.clone()),
        ),
        (
            "empty range",
            Box::new(|r| r.held[1].ranges[0].end = r.held[1].ranges[0].start),
        ),
        (
            "too many held",
            Box::new(|r| {
                r.held = (0..=1024u32)
                    .map(|i| {
                        let mut id = [0u8; 32];
                        id[..4].copy_from_slice(&i.to_le_bytes());
                        Held {
                            manifest: ManifestId(id),
                            movie: MovieId::from_tmdb(1),
                            complete: true,
                            ranges: vec![],
                        }
                    })
                    .collect()
            }),
        ),
        (
            "too many ranges",
            Box::new(|r| {
                let range = r.held[1].ranges[0];
                r.held[1].ranges = vec![range; 8193];
            }),
        ),
    ];
    for (what, mutate) in cases {
        let mut r = record(&k);
        mutate(&mut r);
        assert!(
            matches!(
                SignedCatalogRecord::sign(&r, &k),
                Err(ProtoError::Invalid { .. })
            ),
            "{what}"
        );
    }
    let mut v6 = record(&k);
    v6.quic_addr = "[::1]:7400".into();
    v6.gateway_url = "https://node.example:8443/".into();
    assert!(SignedCatalogRecord::sign(&v6, &k).is_ok());
}

/// Signs `record` the way a node would but without validating it first, as a hostile
/// node could: the canonical body, the node's signature, the envelope.
fn forge_signed_record(record: &CatalogRecord, key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let body = codec::encode::<_, { codec::MAX_CATALOG_RECORD_BYTES }>(record).unwrap();
    let mut msg = reelnet_proto::sign::CATALOG_RECORD_CONTEXT.to_vec();
    msg.extend_from_slice(&body);
    let signature = key.sign(&msg);
    // bincode's varint for the body length (a record body is below 65536 bytes here).
    let len = u16::try_from(body.len()).unwrap();
    let mut out = match u8::try_from(len) {
        Ok(small) if small < 251 => vec![small],
        _ => [&[251u8][..], &len.to_le_bytes()].concat(),
    };
    out.extend_from_slice(&body);
    out.extend_from_slice(&signature.to_bytes());
    out
}

/// A record from gossip or sync whose `gateway_url` is more than an origin (a path, a
/// query, userinfo, a fragment) is refused by the decode rule, signature or not: other
/// nodes build image URLs from it.
#[test]
fn records_whose_gateway_url_is_not_an_origin_are_refused_from_the_wire() {
    let k = key(3);
    let good = record(&k);
    let now = good.issued_at + 1;
    let wire = forge_signed_record(&good, &k);
    let decoded = SignedCatalogRecord::decode(&wire).unwrap();
    assert_eq!(
        decoded.verify(now).unwrap(),
        good,
        "the forger itself is sound"
    );
    for url in [
        "http://127.0.0.1:8080/admin/v1",
        "http://127.0.0.1:8080/images/../metrics",
        "http://127.0.0.1:8080?next=http://10.0.0.1/",
        "http://user:pw@127.0.0.1:8080",
        "http://evil.example@127.0.0.1:8080",
        "http://127.0.0.1:8080#x",
        "http://127.0.0.1%3A8080",
    ] {
        let mut bad = good.clone();
        bad.gateway_url = url.to_owned();
        let wire = forge_signed_record(&bad, &k);
        let signed = SignedCatalogRecord::decode(&wire).unwrap();
        let err = signed.verify(now).unwrap_err();
        assert!(
            matches!(&err, ProtoError::Invalid { reason, .. } if reason.contains("gateway_url")),
            "{url}: {err:?}"
        );
    }
}

#[test]
fn invalid_manifests_cannot_be_signed() {
    let k = key(1);
    let cases: Vec<Case<Manifest>> = vec![
        ("version", Box::new(|m| m.version = 3)),
        ("empty title", Box::new(|m| m.title.clear())),
        ("control char", Box::new(|m| m.title = "a\nb".into())),
        ("long title", Box::new(|m| m.title = "x".repeat(513))),
        ("year", Box::new(|m| m.year = Some(1200))),
        ("target 0", Box::new(|m| m.target_duration_ms = 0)),
        ("target 61s", Box::new(|m| m.target_duration_ms = 60_001)),
        ("no tracks", Box::new(|m| m.tracks.clear())),
        (
            "9 tracks",
            Box::new(|m| {
                m.tracks = (0..9)
                    .map(|i| track(&format!("t{i}"), 640, 360, 1))
                    .collect()
            }),
        ),
        (
            "dup names",
            Box::new(|m| m.tracks[1].rendition.name = "720p".into()),
        ),
        (
            "bad name",
            Box::new(|m| m.tracks[0].rendition.name = "../x".into()),
        ),
        (
            "dot name",
            Box::new(|m| m.tracks[0].rendition.name = ".x".into()),
        ),
        (
            "quote in codecs",
            Box::new(|m| m.tracks[0].rendition.codecs = "avc1\",x".into()),
        ),
        (
            "empty codecs",
            Box::new(|m| m.tracks[0].rendition.codecs.clear()),
        ),
        ("half audio", Box::new(|m| m.tracks[0].rendition.height = 0)),
        ("huge", Box::new(|m| m.tracks[0].rendition.width = 20_000)),
        (
            "bandwidth",
            Box::new(|m| m.tracks[0].rendition.bandwidth = 0),
        ),
        (
            "fps",
            Box::new(|m| m.tracks[0].rendition.frame_rate_milli = 2_000_000),
        ),
        (
            "zero duration",
            Box::new(|m| m.tracks[0].segments[0].duration_ms = 0),
        ),
        (
            "61 s segment",
            Box::new(|m| m.tracks[0].segments[0].duration_ms = 60_001),
        ),
        ("zero size", Box::new(|m| m.tracks[0].segments[1].size = 0)),
        (
            "huge segment",
            Box::new(|m| m.tracks[0].segments[1].size = (32 << 20) + 1),
        ),
        ("fmp4 no init", Box::new(|m| m.tracks[1].init = None)),
        (
            "complete but empty",
            Box::new(|m| {
                m.complete = true;
                m.tracks[1].segments.clear();
            }),
        ),
        (
            "20001 segments",
            Box::new(|m| m.tracks[0].segments = vec![entry(1, 1000); 20_001]),
        ),
        (
            "80001 total",
            Box::new(|m| {
                m.tracks = (0..5)
                    .map(|i| {
                        let mut t = track(&format!("t{i}"), 640, 360, 0);
                        t.segments = vec![entry(1, 1000); if i == 0 { 1 } else { 20_000 }];
                        t
                    })
                    .collect()
            }),
        ),
    ];
    for (what, mutate) in cases {
        let mut m = manifest(&k);
        mutate(&mut m);
        assert!(
            matches!(
                SignedManifest::sign(&m, &k),
                Err(ProtoError::Invalid { .. })
            ),
            "{what}: {:?}",
            SignedManifest::sign(&m, &k).err()
        );
    }
    // MPEG-TS without init segments is fine.
    let mut ts = manifest(&k);
    ts.container = Container::MpegTs;
    ts.tracks.iter_mut().for_each(|t| t.init = None);
    assert!(SignedManifest::sign(&ts, &k).is_ok());
}

#[test]
fn largest_valid_manifest_fits_the_limit() {
    let k = key(1);
    let mut m = manifest(&k);
    m.title = "x".repeat(512);
    m.tracks = (0..8)
        .map(|i| {
            let mut t = track(&format!("{i}{}", "n".repeat(31)), 16_384, 16_384, 0);
            t.rendition.codecs = "c".repeat(128);
            t.rendition.bandwidth = u32::MAX;
            t.segments = vec![
                SegmentEntry {
                    hash: SegmentHash([0xff; 32]),
                    duration_ms: 60_000,
                    size: 32 << 20,
                };
                10_000
            ];
            t
        })
        .collect();
    m.seq = u64::MAX;
    m.created_at = u64::MAX;
    let sm = SignedManifest::sign(&m, &k).unwrap();
    let bytes = sm.encode();
    assert!(bytes.len() <= MAX_SIGNED_MANIFEST_BYTES);
    assert_eq!(SignedManifest::decode(&bytes).unwrap().verify().unwrap(), m);
}
