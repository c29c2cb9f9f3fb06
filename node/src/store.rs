//! The node's store: segment bytes addressed by their BLAKE3 hash, and signed manifests.
//!
//! Segments are files under `segments/ab/<hash>` (written to a temporary file, synced, then
//! renamed, so a crash never leaves a partial segment under its real name); their hash is
//! checked when written and again when read, so a bad segment is never stored or served.
//! Manifests live in sled (`db/`): every signed manifest by id, and for each ingest (movie,
//! origin node, ingest id) the id of its newest version, so a growing manifest replaces its
//! older sequence numbers.

use std::io::Write;
use std::path::{Path, PathBuf};

use reelnet_proto::{Manifest, ManifestId, MovieId, SegmentHash, SignedManifest};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store database: {0}")]
    Db(#[from] sled::Error),
    #[error("segment hash mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        expected: SegmentHash,
        actual: SegmentHash,
    },
    #[error("manifest rejected: {0}")]
    BadManifest(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A manifest with its id, as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub id: ManifestId,
    pub manifest: Manifest,
    pub signed: SignedManifest,
}

/// Cheap to clone; every method is synchronous (call from a blocking context when the
/// work may be large).
#[derive(Clone)]
pub struct Store {
    segments_dir: PathBuf,
    db: sled::Db,
    /// ManifestId → encoded SignedManifest
    manifests: sled::Tree,
    /// movie ++ 0 ++ origin ++ ingest_id → ManifestId of the newest version
    latest: sled::Tree,
}

fn ingest_key(m: &Manifest) -> Vec<u8> {
    let mut k = m.movie.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(m.origin.as_bytes());
    k.extend_from_slice(&m.ingest_id);
    k
}

impl Store {
    /// Opens (creating) the store under `data_dir`. sled admits one process per directory;
    /// a second opener gets an error.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let segments_dir = data_dir.join("segments");
        std::fs::create_dir_all(&segments_dir).map_err(io(&segments_dir))?;
        let db = sled::open(data_dir.join("db"))?;
        Ok(Self {
            segments_dir,
            manifests: db.open_tree("manifests")?,
            latest: db.open_tree("latest")?,
            db,
        })
    }

    /// Where a segment's bytes live (whether or not they are there).
    pub fn segment_path(&self, hash: &SegmentHash) -> PathBuf {
        let hex = hash.to_string();
        self.segments_dir.join(&hex[..2]).join(hex)
    }

    pub fn has_segment(&self, hash: &SegmentHash) -> bool {
        self.segment_path(hash).is_file()
    }

    /// Stores segment bytes; with `expected`, refuses bytes that do not hash to it.
    /// Idempotent. Returns the hash and whether the bytes were new.
    pub fn put_segment(
        &self,
        bytes: &[u8],
        expected: Option<&SegmentHash>,
    ) -> Result<(SegmentHash, bool), StoreError> {
        let hash = SegmentHash::of(bytes);
        if let Some(expected) = expected {
            if *expected != hash {
                return Err(StoreError::HashMismatch {
                    expected: *expected,
                    actual: hash,
                });
            }
        }
        let path = self.segment_path(&hash);
        if path.is_file() {
            return Ok((hash, false));
        }
        let dir = path.parent().unwrap_or(&self.segments_dir).to_owned();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{hash}.{}.tmp", rand::random::<u64>()));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok((hash, true))
    }

    /// Reads a segment, checking its hash; a corrupt file is deleted and reported missing.
    pub fn read_segment(&self, hash: &SegmentHash) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.segment_path(hash);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        if SegmentHash::of(&bytes) != *hash {
            tracing::warn!(%hash, "stored segment is corrupt; removing it");
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Verifies and stores a signed manifest; it becomes its ingest's newest version when
    /// its sequence number is higher. Durable when this returns.
    pub fn put_manifest(&self, signed: &SignedManifest) -> Result<StoredManifest, StoreError> {
        let manifest = signed
            .verify()
            .map_err(|e| StoreError::BadManifest(e.to_string()))?;
        let id = signed.id();
        self.manifests.insert(id.as_bytes(), signed.encode())?;
        let key = ingest_key(&manifest);
        let newer = match self.latest.get(&key)? {
            Some(current) => match self.manifest_by_raw_id(&current)? {
                Some(cur) => manifest.seq > cur.manifest.seq,
                None => true,
            },
            None => true,
        };
        if newer {
            if let Some(old) = self.latest.insert(key, id.as_bytes().as_slice())? {
                // The previous version is superseded; drop it.
                if old.as_ref() != id.as_bytes().as_slice() {
                    self.manifests.remove(old)?;
                }
            }
        } else {
            self.manifests.remove(id.as_bytes())?;
        }
        self.db.flush()?;
        Ok(StoredManifest {
            id,
            manifest,
            signed: signed.clone(),
        })
    }

    fn manifest_by_raw_id(&self, raw: &[u8]) -> Result<Option<StoredManifest>, StoreError> {
        let Some(bytes) = self.manifests.get(raw)? else {
            return Ok(None);
        };
        let signed =
            SignedManifest::decode(&bytes).map_err(|e| StoreError::BadManifest(e.to_string()))?;
        let manifest = signed
            .verify()
            .map_err(|e| StoreError::BadManifest(e.to_string()))?;
        Ok(Some(StoredManifest {
            id: signed.id(),
            manifest,
            signed,
        }))
    }

    /// A stored manifest by id.
    pub fn manifest(&self, id: &ManifestId) -> Result<Option<StoredManifest>, StoreError> {
        self.manifest_by_raw_id(id.as_bytes())
    }

    /// The newest version of every ingest of `movie`.
    pub fn movie_manifests(&self, movie: &MovieId) -> Result<Vec<StoredManifest>, StoreError> {
        let mut prefix = movie.as_str().as_bytes().to_vec();
        prefix.push(0);
        self.collect_latest(self.latest.scan_prefix(prefix))
    }

    /// The newest version of every ingest held.
    pub fn all_manifests(&self) -> Result<Vec<StoredManifest>, StoreError> {
        self.collect_latest(self.latest.iter())
    }

    fn collect_latest(
        &self,
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        let mut out = Vec::new();
        for item in iter {
            let (_, id) = item?;
            if let Some(m) = self.manifest_by_raw_id(&id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Forgets every version of one ingest (a failed ingest leaves no manifest behind).
    /// Segments stay until space is reclaimed; they are unreachable without a manifest.
    pub fn remove_ingest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let key = ingest_key(manifest);
        if let Some(id) = self.latest.remove(key)? {
            self.manifests.remove(id)?;
        }
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;
    use reelnet_proto::{Container, NodeId, Rendition, SegmentEntry, Track};

    fn manifest(key: &SigningKey, seq: u64, segs: &[SegmentHash]) -> Manifest {
        Manifest {
            version: 1,
            movie: MovieId::from_tmdb(1),
            title: "T".into(),
            year: None,
            origin: NodeId::from_verifying_key(&key.verifying_key()),
            ingest_id: [9; 16],
            seq,
            created_at: 0,
            container: Container::MpegTs,
            target_duration_ms: 4000,
            tracks: vec![Track {
                rendition: Rendition {
                    name: "360p".into(),
                    width: 640,
                    height: 360,
                    bandwidth: 800_000,
                    codecs: "avc1.64001e".into(),
                    frame_rate_milli: 25_000,
                },
                init: None,
                segments: segs
                    .iter()
                    .map(|h| SegmentEntry {
                        hash: *h,
                        duration_ms: 4000,
                        size: 3,
                    })
                    .collect(),
            }],
            complete: false,
        }
    }

    #[test]
    fn segments_are_content_addressed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (h, new) = store.put_segment(b"abc", None).unwrap();
        assert!(new);
        assert!(!store.put_segment(b"abc", Some(&h)).unwrap().1);
        assert!(matches!(
            store.put_segment(b"abd", Some(&h)),
            Err(StoreError::HashMismatch { .. })
        ));
        assert_eq!(store.read_segment(&h).unwrap().unwrap(), b"abc");
        // Corruption on disk is detected on read and the file dropped.
        std::fs::write(store.segment_path(&h), b"xyz").unwrap();
        assert!(store.read_segment(&h).unwrap().is_none());
        assert!(!store.has_segment(&h));
    }

    #[test]
    fn newest_manifest_version_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let a = SegmentHash::of(b"a");
        let b = SegmentHash::of(b"b");
        let v1 = SignedManifest::sign(&manifest(&key, 1, &[a]), &key).unwrap();
        let v2 = SignedManifest::sign(&manifest(&key, 2, &[a, b]), &key).unwrap();
        store.put_manifest(&v2).unwrap();
        store.put_manifest(&v1).unwrap(); // older, arrives late
        let all = store.movie_manifests(&MovieId::from_tmdb(1)).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].manifest.seq, 2);
        assert!(store.manifest(&v1.id()).unwrap().is_none());
        store.remove_ingest(&all[0].manifest).unwrap();
        assert!(store.all_manifests().unwrap().is_empty());
    }
}
