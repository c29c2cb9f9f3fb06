//! Size limits, truncation and hostile lengths: every decoder errors, never panics and never
//! allocates what the input claims.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reelnet_proto::codec::{self, MAX_MANIFEST_BYTES};
use reelnet_proto::*;

fn varint(n: u64) -> Vec<u8> {
    let mut v = vec![253];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

#[test]
fn oversized_input_is_too_large() {
    let big = vec![0u8; MAX_SIGNED_MANIFEST_BYTES + 1];
    assert!(matches!(
        SignedManifest::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));
    let big = vec![0u8; MAX_SIGNED_CATALOG_RECORD_BYTES + 1];
    assert!(matches!(
        SignedCatalogRecord::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));
    let big = vec![0u8; MAX_MANIFEST_BYTES + 1];
    assert!(matches!(
        codec::decode::<Manifest, MAX_MANIFEST_BYTES>(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn oversized_manifest_body_inside_envelope_is_too_large() {
    // Envelope within the outer limit but its body over MAX_MANIFEST_BYTES.
    let body_len = MAX_MANIFEST_BYTES + 1;
    let mut bytes = vec![252];
    bytes.extend_from_slice(&(body_len as u32).to_le_bytes());
    bytes.resize(bytes.len() + body_len + 64, 0);
    assert!(bytes.len() <= MAX_SIGNED_MANIFEST_BYTES);
    assert!(matches!(
        SignedManifest::decode(&bytes),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn frame_prefix_over_limit_is_rejected_before_the_body() {
    let prefix = ((MAX_REQUEST_FRAME + 1) as u32).to_be_bytes();
    assert!(matches!(
        decode_request(&prefix),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        decode_response_header(&u32::MAX.to_be_bytes()),
        Err(DecodeError::TooLarge { .. })
    ));
    // A prefix at the limit just waits for the body.
    assert_eq!(
        decode_request(&(MAX_REQUEST_FRAME as u32).to_be_bytes()),
        Ok(None)
    );
    // An empty body is an error, not a request.
    assert!(decode_request(&[0, 0, 0, 0]).is_err());
}

#[test]
fn response_length_over_max_segment_is_rejected() {
    let too_long = ResponseHeader::ok(MAX_SEGMENT_BYTES + 1, SegmentHash::of(b""));
    assert!(matches!(
        encode_response_header(&too_long),
        Err(EncodeError::Invalid(_))
    ));
    // Hand-build the frame a hostile peer would send.
    let body = codec::encode::<_, 256>(&too_long).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    assert!(matches!(
        decode_response_header(&frame),
        Err(DecodeError::Invalid(_))
    ));
    // Error statuses carry no body.
    let mut err_with_body = ResponseHeader::error(Status::NotFound);
    err_with_body.length = 10;
    let body = codec::encode::<_, 256>(&err_with_body).unwrap();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    assert!(decode_response_header(&frame).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let k = key(1);
    let sm = SignedManifest::sign(&manifest(&k), &k).unwrap();
    let bytes = sm.encode();
    for cut in 0..bytes.len() {
        assert!(SignedManifest::decode(&bytes[..cut]).is_err(), "cut {cut}");
    }
    let body = sm.manifest_bytes();
    for cut in 0..body.len() {
        assert!(
            codec::decode::<Manifest, MAX_MANIFEST_BYTES>(&body[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let rec = SignedCatalogRecord::sign(&record(&key(2)), &key(2))
        .unwrap()
        .encode();
    for cut in 0..rec.len() {
        assert!(
            SignedCatalogRecord::decode(&rec[..cut]).is_err(),
            "cut {cut}"
        );
    }
    // Frames: a strict prefix needs more bytes; a lying prefix with a short body errors.
    let req = encode_request(&SegmentRequest {
        manifest: ManifestId([1; 32]),
        track: 300,
        segment: SegmentRef::Hash(SegmentHash([2; 32])),
    })
    .unwrap();
    for cut in 0..req.len() {
        assert_eq!(decode_request(&req[..cut]), Ok(None), "cut {cut}");
        if cut >= 4 {
            let mut lying = ((cut - 4) as u32).to_be_bytes().to_vec();
            lying.extend_from_slice(&req[4..cut]);
            assert!(decode_request(&lying).is_err(), "short body {cut}");
        }
    }
    // Trailing bytes inside a frame body are rejected.
    let mut padded = req.clone();
    padded.push(0);
    let len = (padded.len() - 4) as u32;
    padded[..4].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(
        decode_request(&padded),
        Err(DecodeError::TrailingBytes { extra: 1 })
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    let k = key(1);
    let mut bytes = SignedManifest::sign(&manifest(&k), &k).unwrap().encode();
    bytes.push(0);
    assert_eq!(
        SignedManifest::decode(&bytes),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
}

#[test]
fn huge_claimed_lengths_do_not_allocate() {
    // Envelope body claiming 2^40 bytes.
    let mut env = varint(1 << 40);
    env.extend_from_slice(&[0; 100]);
    assert!(SignedManifest::decode(&env).is_err());
    assert!(SignedCatalogRecord::decode(&env).is_err());

    // Inside a manifest: version 1, then a movie id string claiming 2^40 bytes.
    let mut m = vec![1];
    m.extend(varint(1 << 40));
    m.extend_from_slice(b"tmdb-1");
    assert!(matches!(
        codec::decode::<Manifest, MAX_MANIFEST_BYTES>(&m),
        Err(DecodeError::LimitExceeded { .. })
    ));

    // A real manifest whose track vector claims 2^40 tracks, and each u64::MAX.
    let k = key(1);
    let good = manifest(&k);
    let body = codec::encode::<_, MAX_MANIFEST_BYTES>(&good).unwrap();
    let mut before = good.clone();
    before.tracks.clear();
    before.complete = false;
    // The encoding ends with the tracks length, `complete` and `meta`.
    let meta_len = codec::encode::<_, MAX_MANIFEST_BYTES>(&before.meta)
        .unwrap()
        .len();
    let prefix_len = codec::encode::<_, MAX_MANIFEST_BYTES>(&before)
        .unwrap()
        .len()
        - 2
        - meta_len;
    assert_eq!(body[prefix_len], 2, "the tracks length byte");
    for claim in [1u64 << 40, u64::MAX] {
        let mut evil = body[..prefix_len].to_vec();
        evil.extend(varint(claim));
        evil.extend_from_slice(&body[prefix_len + 1..]);
        assert!(codec::decode::<Manifest, MAX_MANIFEST_BYTES>(&evil).is_err());
    }

    // Catalog record whose `held` claims 2^40 entries.
    let r = record(&key(2));
    let mut empty = r.clone();
    empty.held.clear();
    let eb = codec::encode::<_, MAX_CATALOG_RECORD_BYTES>(&empty).unwrap();
    // node(32) + quic_addr + gateway_url, then the held length byte (0).
    let held_at = 32 + 1 + r.quic_addr.len() + 1 + r.gateway_url.len();
    assert_eq!(eb[held_at], 0);
    let mut evil = eb[..held_at].to_vec();
    evil.extend(varint(1 << 40));
    evil.extend_from_slice(&eb[held_at + 1..]);
    assert!(codec::decode::<CatalogRecord, MAX_CATALOG_RECORD_BYTES>(&evil).is_err());
}

#[test]
fn garbage_never_panics() {
    // A cheap deterministic sweep; the fuzz targets do the real work.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = SignedManifest::decode(&bytes).map(|s| s.verify());
        let _ = SignedCatalogRecord::decode(&bytes).map(|s| s.verify(NOW));
        let _ = decode_request(&bytes);
        let _ = decode_response_header(&bytes);
        let _ = serde_json::from_slice::<Claims>(&bytes);
    }
}

#[test]
fn movie_meta_limits_are_enforced() {
    let k = key(1);
    let mut m = manifest(&k);
    m.meta = MovieMeta {
        overview: "Neo learns the truth.\nThen he flies.".into(),
        genres: vec!["Action".into(), "Science Fiction".into()],
        runtime_min: Some(136),
        poster: Some(SegmentHash::of(b"poster")),
        backdrop: Some(SegmentHash::of(b"backdrop")),
        tmdb_id: Some(603),
        expected_duration_ms: Some(8_160_000),
    };
    let signed = SignedManifest::sign(&m, &k).unwrap();
    assert_eq!(signed.verify().unwrap().meta, m.meta);

    let refused = |meta: MovieMeta| {
        let mut bad = m.clone();
        bad.meta = meta;
        assert!(bad.validate().is_err(), "{:?}", bad.meta);
        assert!(SignedManifest::sign(&bad, &k).is_err());
    };
    let mut at_limit = m.meta.clone();
    at_limit.overview = "a".repeat(manifest::MAX_OVERVIEW_LEN);
    at_limit.genres = vec!["g".repeat(manifest::MAX_GENRE_LEN); manifest::MAX_GENRES];
    let mut ok = m.clone();
    ok.meta = at_limit.clone();
    assert!(ok.validate().is_ok());

    refused(MovieMeta {
        overview: "a".repeat(manifest::MAX_OVERVIEW_LEN + 1),
        ..at_limit.clone()
    });
    refused(MovieMeta {
        genres: vec!["Drama".into(); manifest::MAX_GENRES + 1],
        ..m.meta.clone()
    });
    refused(MovieMeta {
        genres: vec!["g".repeat(manifest::MAX_GENRE_LEN + 1)],
        ..m.meta.clone()
    });
    refused(MovieMeta {
        genres: vec![String::new()],
        ..m.meta.clone()
    });
    refused(MovieMeta {
        overview: "bell\u{7}".into(),
        ..m.meta.clone()
    });
}
