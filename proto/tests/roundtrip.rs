//! Every type survives encode → decode unchanged, and the helpers mean what they say.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reelnet_proto::codec::{self, MAX_CATALOG_RECORD_BYTES, MAX_MANIFEST_BYTES};
use reelnet_proto::transfer::SEGMENT_ALPN;
use reelnet_proto::*;

#[test]
fn manifest_codec_round_trip() {
    let m = manifest(&key(1));
    let bytes = codec::encode::<_, MAX_MANIFEST_BYTES>(&m).unwrap();
    let back: Manifest = codec::decode::<_, MAX_MANIFEST_BYTES>(&bytes).unwrap();
    assert_eq!(back, m);
}

#[test]
fn signed_manifest_round_trip_and_id() {
    let k = key(1);
    let m = manifest(&k);
    let sm = SignedManifest::sign(&m, &k).unwrap();
    let bytes = sm.encode();
    let back = SignedManifest::decode(&bytes).unwrap();
    assert_eq!(back, sm);
    assert_eq!(back.verify().unwrap(), m);
    assert_eq!(back.id(), sm.id());
    assert_eq!(sm.id(), ManifestId::of_signed_bytes(&bytes));
    assert_eq!(sm.id().to_string().parse::<ManifestId>().unwrap(), sm.id());

    // A re-signed, grown manifest is a new version of the same ingest with a new id.
    let mut grown = m.clone();
    grown.seq += 1;
    grown.tracks[0].segments.push(entry(99, 4000));
    let sm2 = SignedManifest::sign(&grown, &k).unwrap();
    assert_ne!(sm2.id(), sm.id());
    assert_eq!(sm2.verify().unwrap().ingest_id, m.ingest_id);
}

#[test]
fn manifest_helpers() {
    let m = manifest(&key(1));
    assert_eq!(m.tracks[0].duration_ms(), 4000 + 4001 + 4002);
    assert_eq!(m.tracks[0].segment_count(), 3);
    assert_eq!(m.tracks[0].max_segment_duration_ms(), 4002);
    assert_eq!(m.tracks[0].size_bytes(), 800 + 1000 + 1001 + 1002);
    assert_eq!(m.segment_count(), 5);
    assert_eq!(m.duration_ms(), 12_003);
    assert!(m.tracks[1].rendition.is_audio_only());
    assert_eq!(m.track_by_name("audio").unwrap().0, 1);
    assert!(m.track_by_name("1080p").is_none());
    assert_eq!(Container::Fmp4.segment_extension(), "m4s");
    assert_eq!(Container::MpegTs.segment_extension(), "ts");

    assert_eq!(
        m.resolve(0, &SegmentRef::Index(1)),
        Some(&m.tracks[0].segments[1])
    );
    assert_eq!(m.resolve(0, &SegmentRef::Init), m.tracks[0].init.as_ref());
    let h = m.tracks[1].segments[1].hash;
    assert_eq!(
        m.resolve(1, &SegmentRef::Hash(h)),
        Some(&m.tracks[1].segments[1])
    );
    let audio_init = m.tracks[1].init.unwrap().hash;
    assert_eq!(
        m.resolve(1, &SegmentRef::Hash(audio_init)),
        m.tracks[1].init.as_ref()
    );
    assert_eq!(
        m.resolve(0, &SegmentRef::Hash(audio_init)),
        None,
        "another track's"
    );
    assert_eq!(m.resolve(0, &SegmentRef::Index(3)), None);
    assert_eq!(m.resolve(2, &SegmentRef::Init), None);
}

#[test]
fn catalog_round_trip_and_helpers() {
    let k = key(2);
    let r = record(&k);
    let bytes = codec::encode::<_, MAX_CATALOG_RECORD_BYTES>(&r).unwrap();
    assert_eq!(
        codec::decode::<CatalogRecord, MAX_CATALOG_RECORD_BYTES>(&bytes).unwrap(),
        r
    );

    let s = SignedCatalogRecord::sign(&r, &k).unwrap();
    let back = SignedCatalogRecord::decode(&s.encode()).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.verify(NOW).unwrap(), r);

    assert_eq!(r.quic_socket_addr().unwrap().port(), 7400);
    let held = r.find(&ManifestId([2; 32])).unwrap();
    assert!(held.has_segment(1, 5) && held.has_segment(1, 299));
    assert!(!held.has_segment(1, 300) && !held.has_segment(0, 10) && !held.has_segment(2, 0));
    assert!(r
        .find(&ManifestId([1; 32]))
        .unwrap()
        .has_segment(5, 1_000_000));
    assert!(r.find(&ManifestId([3; 32])).is_none());

    let mut newer = r.clone();
    newer.seq += 1;
    assert!(newer.is_newer_than(&r));
    assert!(!r.is_newer_than(&newer));
    assert!(!r.is_newer_than(&r));
    let mut other_node = newer.clone();
    other_node.node = node_id(&key(3));
    assert!(
        !other_node.is_newer_than(&r),
        "different node is never newer"
    );
}

#[test]
fn transfer_frames_round_trip_incrementally() {
    let reqs = [
        SegmentRequest {
            manifest: ManifestId([5; 32]),
            track: 2,
            segment: SegmentRef::Init,
        },
        SegmentRequest {
            manifest: ManifestId([6; 32]),
            track: u16::MAX,
            segment: SegmentRef::Index(u32::MAX),
        },
        SegmentRequest {
            manifest: ManifestId([7; 32]),
            track: 0,
            segment: SegmentRef::Hash(SegmentHash::of(b"x")),
        },
    ];
    // Several frames back to back, fed one byte at a time.
    let stream: Vec<u8> = reqs
        .iter()
        .flat_map(|r| encode_request(r).unwrap())
        .collect();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    for b in stream {
        buf.push(b);
        if let Some((req, used)) = decode_request(&buf).unwrap() {
            buf.drain(..used);
            got.push(req);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(got, reqs);

    for h in [
        ResponseHeader::ok(MAX_SEGMENT_BYTES, SegmentHash::of(b"seg")),
        ResponseHeader::ok(0, SegmentHash::of(b"")),
        ResponseHeader::error(Status::NotFound),
        ResponseHeader::error(Status::Busy),
        ResponseHeader::error(Status::BadRequest),
        ResponseHeader::error(Status::Internal),
    ] {
        let mut bytes = encode_response_header(&h).unwrap();
        assert!(bytes.len() - 4 <= MAX_RESPONSE_HEADER);
        for cut in 0..bytes.len() {
            assert_eq!(decode_response_header(&bytes[..cut]).unwrap(), None);
        }
        let len = bytes.len();
        bytes.extend_from_slice(b"body follows");
        assert_eq!(decode_response_header(&bytes).unwrap(), Some((h, len)));
    }
    assert_eq!(SEGMENT_ALPN, b"reelnet/segment/2");
}

#[test]
fn ids_serde_forms() {
    let h = SegmentHash::of(b"abc");
    // Hex in JSON, 32 raw bytes in bincode.
    assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{h}\""));
    assert_eq!(
        serde_json::from_str::<SegmentHash>(&format!("\"{h}\"")).unwrap(),
        h
    );
    assert_eq!(codec::encode::<_, 64>(&h).unwrap(), h.0.to_vec());
    assert_eq!(codec::decode::<SegmentHash, 64>(&h.0).unwrap(), h);

    let n = node_id(&key(4));
    assert_eq!(
        serde_json::from_value::<NodeId>(serde_json::to_value(n).unwrap()).unwrap(),
        n
    );
    assert_eq!(n.verifying_key().unwrap(), key(4).verifying_key());
    assert_eq!(n.to_string().parse::<NodeId>().unwrap(), n);
    assert!(n.to_string().starts_with(&n.short()));

    let m = MovieId::from_tmdb(603);
    assert_eq!(serde_json::to_string(&m).unwrap(), "\"tmdb-603\"");
    assert_eq!(serde_json::from_str::<MovieId>("\"tmdb-603\"").unwrap(), m);
    assert!(serde_json::from_str::<MovieId>("\"../etc\"").is_err());
    let b = codec::encode::<_, 128>(&m).unwrap();
    assert_eq!(codec::decode::<MovieId, 128>(&b).unwrap(), m);
}

#[test]
fn movie_id_is_validated_in_bincode_too() {
    // A String "../x" re-read as a MovieId must fail with a clear reason.
    let bytes = codec::encode::<_, 64>(&"../x".to_string()).unwrap();
    let err = codec::decode::<MovieId, 64>(&bytes).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid(_)), "{err:?}");
    for bad in ["", "Tmdb", "a/b", &"a".repeat(65)] {
        let bytes = codec::encode::<_, 128>(&bad.to_string()).unwrap();
        assert!(codec::decode::<MovieId, 128>(&bytes).is_err(), "{bad}");
    }
}

#[test]
fn claims_json() {
    let c = Claims {
        sub: "u_123".into(),
        email: "a@example.org".into(),
        tier: Tier::Premium,
        tier_until: None,
        email_verified: true,
        role: Role::Admin,
        exp: NOW + 900,
        iat: NOW,
        iss: "http://127.0.0.1:7000".into(),
        aud: ACCESS_TOKEN_AUDIENCE.into(),
        jti: "j1".into(),
        sid: None,
        scope: None,
    };
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["tier"], "premium");
    assert_eq!(v["role"], "admin");
    assert_eq!(serde_json::from_value::<Claims>(v).unwrap(), c);
    assert!(c.is_premium() && c.is_admin());

    // A token from before `role` and `email_verified` existed.
    let old = r#"{"sub":"u","email":"e@x","tier":"free","exp":2,"iat":1,
                  "iss":"t","aud":"reelnet","jti":"j"}"#;
    let c: Claims = serde_json::from_str(old).unwrap();
    assert_eq!(
        (c.role, c.email_verified, c.tier, c.tier_until),
        (Role::User, false, Tier::Free, None)
    );
    assert!(serde_json::from_str::<Claims>(&old.replace("free", "Gold")).is_err());
    // `tier_until` is written only when set, and read back.
    assert!(serde_json::to_value(&c)
        .unwrap()
        .get("tier_until")
        .is_none());
    let mut p = c.clone();
    p.tier = Tier::Premium;
    p.tier_until = Some(NOW + 3600);
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["tier_until"], NOW + 3600);
    assert_eq!(serde_json::from_value::<Claims>(v).unwrap(), p);
    const { assert!(MAX_TOKEN_BYTES >= 4096) };
}
