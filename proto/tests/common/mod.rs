//! Fixtures shared by the integration tests: a node key, a valid manifest and a valid
//! catalog record.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use reelnet_proto::{
    CatalogRecord, Container, Held, Manifest, ManifestId, MovieId, NodeId, Rendition, SegmentEntry,
    SegmentHash, SegmentRange, Track,
};

pub const NOW: u64 = 1_700_000_000;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn node_id(key: &SigningKey) -> NodeId {
    NodeId::from_verifying_key(&key.verifying_key())
}

pub fn entry(n: u32, duration_ms: u32) -> SegmentEntry {
    SegmentEntry {
        hash: SegmentHash::of(&n.to_le_bytes()),
        duration_ms,
        size: 1000 + n,
    }
}

pub fn track(name: &str, width: u32, height: u32, segments: u32) -> Track {
    Track {
        kind: reelnet_proto::manifest::TrackKind::Video,
        media: None,
        rendition: Rendition {
            name: name.into(),
            width,
            height,
            bandwidth: 2_500_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate_milli: 23_976,
        },
        init: Some(SegmentEntry {
            hash: SegmentHash::of(name.as_bytes()),
            duration_ms: 0,
            size: 800,
        }),
        segments: (0..segments).map(|i| entry(i, 4000 + i)).collect(),
    }
}

pub fn manifest(key: &SigningKey) -> Manifest {
    Manifest {
        version: reelnet_proto::manifest::MANIFEST_VERSION,
        movie: MovieId::from_tmdb(603),
        title: "The Matrix".into(),
        year: Some(1999),
        origin: node_id(key),
        ingest_id: [7; 16],
        seq: 3,
        created_at: NOW,
        container: Container::Fmp4,
        target_duration_ms: 6000,
        tracks: vec![track("720p", 1280, 720, 3), track("audio", 0, 0, 2)],
        complete: false,
        meta: Default::default(),
    }
}

pub fn record(key: &SigningKey) -> CatalogRecord {
    CatalogRecord {
        node: node_id(key),
        quic_addr: "127.0.0.1:7400".into(),
        gateway_url: "http://127.0.0.1:8080".into(),
        held: vec![
            Held {
                manifest: ManifestId([1; 32]),
                movie: MovieId::from_tmdb(603),
                complete: true,
                ranges: vec![],
            },
            Held {
                manifest: ManifestId([2; 32]),
                movie: MovieId::derive("Some Home Video", None),
                complete: false,
                ranges: vec![
                    SegmentRange {
                        track: 0,
                        start: 0,
                        end: 10,
                    },
                    SegmentRange {
                        track: 1,
                        start: 5,
                        end: 300,
                    },
                ],
            },
        ],
        seq: 42,
        issued_at: NOW - 10,
        expires_at: NOW + 600,
        replica: true,
        certificate: Vec::new(),
    }
}
