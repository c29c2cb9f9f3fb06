//! The node's store: segment bytes addressed by their BLAKE3 hash, and signed manifests,
//! within a disk quota.
//!
//! Segments are files under `segments/ab/<hash>` (written to a temporary file, synced, then
//! renamed, so a crash never leaves a partial segment under its real name); their hash is
//! checked when written and again when read, so a bad segment is never stored or served.
//! Beside each segment lies its outboard `segments/ab/<hash>.obao` (one BLAKE3 chaining value
//! per 16 KiB group, [`reelnet_proto::outboard`]), computed from the bytes being hashed at
//! write time and written atomically like the segment, so a reader can check the file group
//! by group while it streams it ([`Store::open_verified`]) instead of reading and hashing all
//! of it first. A store written before outboards existed gets them lazily: the first verified
//! read of a segment without one hashes it whole, and writes the outboard if it matches.
//! Outboards are not counted in the quota: they are 32 bytes per 16 KiB (0.2 % of the
//! segment bytes), so the quota's error is bounded by that fraction.
//! Manifests live in sled (`db/`): every signed manifest by id, and for each ingest (movie,
//! origin node, ingest id) the id of its newest version, so a growing manifest replaces its
//! older sequence numbers.
//!
//! # Rot at rest
//!
//! A bit flipped on disk is caught when the bytes are read: [`Store::read_segment`] hashes
//! every segment it returns, and every manifest read decodes the record, checks that it
//! hashes to its id and verifies its signature. A bad copy is dropped at once (the segment
//! file unlinked, the manifest record removed), counted ([`Store::corruption`], rendered as
//! `reelnet_store_corrupt_total{kind}`), and announced on [`Store::lost`] so placement
//! fetches a good copy of what this node is meant to hold; until then the store simply does
//! not have it, so no request gets the bad bytes. Rot in data nobody reads is found by the
//! scrub worker (`crate::scrub`), which walks the store through the same checks.
//!
//! [`Store::read_segment_unchecked`] is the one read without the hash: the QUIC segment
//! server uses it because every receiver verifies every byte and reports a failed check
//! back, upon which the server re-checks its copy with [`Store::check_segment`].
//!
//! # Quota, pinned data and the LRU cache
//!
//! Segment bytes never exceed the quota ([`Store::set_quota`]; `storage.quota_bytes`).
//! Every segment is either
//! - **pinned**: written by [`Store::put_segment`] (the node's own ingests, placement pulls)
//!   or named by a stored manifest whose ingest is not released. Pinned data is never
//!   evicted; a pinned write that cannot fit fails with [`StoreError::QuotaExceeded`];
//! - **cache**: written by [`Store::put_cached_segment`] (segments fetched for viewers), or
//!   left over when placement releases an ingest ([`Store::release_ingest`]) or an ingest is
//!   removed. Cache is kept in least-recently-used order ([`Store::touch`], and every
//!   [`Store::read_segment`]) and evicted oldest first when a write needs the room.
//!
//! The bookkeeping is an in-memory index (hash → size, pinned, last use) rebuilt on open
//! from the segments directory and the stored manifests (the released flags are in sled;
//! the access order is not persisted — after a restart cache is ordered by file time). The
//! index sits behind one mutex shared by the store's clones: the store is a synchronous
//! component called from blocking tasks, every critical section is a few map operations
//! (plus unlinking evicted files, so a concurrent write of the same hash cannot race the
//! unlink), and no other lock is taken while it is held.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use reelnet_proto::{Manifest, ManifestId, MovieId, Outboard, SegmentHash, SignedManifest};

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
    /// A stored segment failed its check while being read; it has been removed.
    #[error("stored segment {0} is corrupt (removed from the store)")]
    Corrupt(SegmentHash),
    /// The write does not fit in the quota even with every cached segment evicted.
    #[error(
        "disk quota exceeded: {needed} more bytes do not fit ({pinned} pinned of {quota} allowed)"
    )]
    QuotaExceeded {
        needed: u64,
        pinned: u64,
        quota: u64,
    },
    /// The file system holding the store is full (`ENOSPC`, or the user's disk quota,
    /// `EDQUOT`): nothing was stored; the write can be retried once space is freed.
    #[error(
        "disk full writing {path}: {source} (free space on that file system or lower storage.quota_bytes)"
    )]
    DiskFull {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the write failed for want of room (the quota or the disk), not for a fault:
    /// it succeeds again once room is made.
    pub fn is_full(&self) -> bool {
        match self {
            Self::QuotaExceeded { .. } | Self::DiskFull { .. } => true,
            Self::Db(sled::Error::Io(e)) => is_no_space(e),
            _ => false,
        }
    }
}

/// `ENOSPC` (`StorageFull`) or `EDQUOT` (`QuotaExceeded`): the file system has no room.
pub fn is_no_space(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| {
        if is_no_space(&source) {
            StoreError::DiskFull {
                path: path.to_owned(),
                source,
            }
        } else {
            StoreError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// A manifest with its id, as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub id: ManifestId,
    pub manifest: Manifest,
    pub signed: SignedManifest,
}

/// How much of the quota is in use (segment bytes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct StoreUsage {
    /// Bytes of every segment on disk.
    pub used_bytes: u64,
    /// Bytes that are never evicted.
    pub pinned_bytes: u64,
    /// Bytes of evictable cache (`used_bytes - pinned_bytes`).
    pub cache_bytes: u64,
    /// The quota.
    pub quota_bytes: u64,
    /// Number of segments on disk.
    pub segments: u64,
    /// How many of them are cache.
    pub cached_segments: u64,
    /// Cached segments evicted since the store was opened.
    pub evictions: u64,
    /// Bytes held back for downloads and writes under way ([`Store::reserve`]): counted
    /// against the quota like pinned data.
    #[serde(default)]
    pub reserved_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    pinned: bool,
    /// Last use; the key of the entry in `Index::lru` while it is cache.
    tick: u64,
}

/// The in-memory accounting of the segments directory.
#[derive(Debug, Default)]
struct Index {
    quota: u64,
    entries: HashMap<SegmentHash, Entry>,
    /// Cache entries by last use, oldest first.
    lru: BTreeMap<u64, SegmentHash>,
    /// For each pinned ingest (by `ingest_key`), the segments its newest manifest names.
    pinned_ingests: HashMap<Vec<u8>, HashSet<SegmentHash>>,
    /// How many pinned ingests name each segment.
    refs: HashMap<SegmentHash, u32>,
    used: u64,
    pinned: u64,
    /// Bytes of writes under way (counted against the quota before they land).
    reserved: u64,
    next_tick: u64,
    evictions: u64,
}

impl Index {
    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    fn insert(&mut self, hash: SegmentHash, size: u64, pinned: bool) {
        let tick = self.tick();
        self.used += size;
        if pinned {
            self.pinned += size;
        } else {
            self.lru.insert(tick, hash);
        }
        self.entries.insert(hash, Entry { size, pinned, tick });
    }

    fn remove(&mut self, hash: &SegmentHash) {
        if let Some(e) = self.entries.remove(hash) {
            self.used -= e.size;
            if e.pinned {
                self.pinned -= e.size;
            } else {
                self.lru.remove(&e.tick);
            }
        }
    }

    fn set_pinned(&mut self, hash: &SegmentHash, pinned: bool) {
        let tick = self.tick();
        let Some(e) = self.entries.get_mut(hash) else {
            return;
        };
        if e.pinned == pinned {
            return;
        }
        e.pinned = pinned;
        if pinned {
            self.pinned += e.size;
            self.lru.remove(&e.tick);
        } else {
            self.pinned -= e.size;
            e.tick = tick;
            self.lru.insert(tick, *hash);
        }
    }

    fn touch(&mut self, hash: &SegmentHash) {
        let tick = self.tick();
        if let Some(e) = self.entries.get_mut(hash) {
            if !e.pinned {
                self.lru.remove(&e.tick);
                e.tick = tick;
                self.lru.insert(tick, *hash);
            }
        }
    }

    /// Makes `hashes` the pinned set of ingest `key` (replacing its previous set).
    fn pin_ingest(&mut self, key: Vec<u8>, hashes: HashSet<SegmentHash>) {
        let old = self.pinned_ingests.remove(&key).unwrap_or_default();
        for h in hashes.difference(&old) {
            *self.refs.entry(*h).or_insert(0) += 1;
            self.set_pinned(h, true);
        }
        for h in old.difference(&hashes) {
            self.unref(h);
        }
        self.pinned_ingests.insert(key, hashes);
    }

    fn unpin_ingest(&mut self, key: &[u8]) {
        for h in self.pinned_ingests.remove(key).unwrap_or_default() {
            self.unref(&h);
        }
    }

    fn unref(&mut self, h: &SegmentHash) {
        if let Some(n) = self.refs.get_mut(h) {
            *n -= 1;
            if *n == 0 {
                self.refs.remove(h);
                self.set_pinned(h, false);
            }
        }
    }

    /// Evicts cache, oldest first, until `size` more bytes fit; the evicted hashes are
    /// returned (their files must be unlinked before the lock is released). Evicts nothing
    /// when even evicting everything would not make room.
    /// Evicts the least recently used cache until `bytes` are freed (or no cache is left).
    fn evict_cache(&mut self, bytes: u64) -> Vec<SegmentHash> {
        let mut freed = 0;
        let mut evicted = Vec::new();
        while freed < bytes {
            let Some((_, hash)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&hash) {
                self.used -= e.size;
                self.evictions += 1;
                freed += e.size;
            }
            evicted.push(hash);
        }
        evicted
    }

    fn make_room(&mut self, size: u64) -> Result<Vec<SegmentHash>, StoreError> {
        let floor = self.pinned.saturating_add(self.reserved);
        if floor.saturating_add(size) > self.quota {
            return Err(StoreError::QuotaExceeded {
                needed: size,
                pinned: self.pinned,
                quota: self.quota,
            });
        }
        let mut evicted = Vec::new();
        while self.used + self.reserved + size > self.quota {
            let Some((_, hash)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&hash) {
                self.used -= e.size;
                self.evictions += 1;
            }
            evicted.push(hash);
        }
        Ok(evicted)
    }
}

/// What a pinned manifest keeps on disk: its segments and its poster and backdrop (which
/// other nodes fetch from the origin, so they must not be evicted there either).
fn segment_hashes(m: &Manifest) -> HashSet<SegmentHash> {
    let mut out: HashSet<SegmentHash> = m
        .meta
        .poster
        .iter()
        .chain(&m.meta.backdrop)
        .copied()
        .collect();
    for t in &m.tracks {
        if let Some(init) = &t.init {
            out.insert(init.hash);
        }
        out.extend(t.segments.iter().map(|s| s.hash));
    }
    out
}

/// Corrupt copies found at rest since the store was opened, and the scrub's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Corruption {
    /// Segment files whose bytes did not hash to their name (dropped).
    pub segments: u64,
    /// Manifest records that did not decode, hash to their id or verify (dropped).
    pub manifests: u64,
    /// Bytes the scrub has read and checked.
    pub scrubbed_bytes: u64,
    /// Full passes the scrub has completed.
    pub scrub_passes: u64,
}

/// Segment writes refused for want of room since the store was opened
/// (`reelnet_store_full_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FullWrites {
    /// Refused by the quota (`storage.quota_bytes`), pinned data leaving no room.
    pub quota: u64,
    /// Failed because the file system was full (`ENOSPC`/`EDQUOT`), after evicting cache.
    pub disk: u64,
}

#[derive(Debug, Default)]
struct Health {
    full_quota: AtomicU64,
    full_disk: AtomicU64,
    segments: AtomicU64,
    manifests: AtomicU64,
    scrubbed_bytes: AtomicU64,
    scrub_passes: AtomicU64,
    /// Woken when a copy is dropped as corrupt (placement waits on it).
    lost: tokio::sync::Notify,
}

/// Quota held back by [`Store::reserve`]; released when dropped.
#[must_use = "the quota is released when the reservation is dropped"]
pub struct Reservation {
    store: Store,
    bytes: u64,
}

impl Reservation {
    /// The bytes held back.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut index = self.store.lock();
        index.reserved = index.reserved.saturating_sub(self.bytes);
    }
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
    /// ingest key → () for ingests placement released (their segments are cache)
    released: sled::Tree,
    index: Arc<Mutex<Index>>,
    health: Arc<Health>,
}

fn hex_id(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn ingest_key(m: &Manifest) -> Vec<u8> {
    let mut k = m.movie.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(m.origin.as_bytes());
    k.extend_from_slice(&m.ingest_id);
    k
}

/// Every segment file under `dir` with its size and modification time; leftover temporary
/// files of interrupted writes are removed.
fn scan_segments(dir: &Path) -> Result<Vec<(SegmentHash, u64, std::time::SystemTime)>, StoreError> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).map_err(io(dir))? {
        let sub = sub.map_err(io(dir))?.path();
        if !sub.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&sub).map_err(io(&sub))? {
            let file = file.map_err(io(&sub))?;
            let name = file.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(file.path());
                continue;
            }
            let Ok(hash) = name.parse::<SegmentHash>() else {
                continue;
            };
            let meta = file.metadata().map_err(io(&file.path()))?;
            if !meta.is_file() {
                continue;
            }
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            out.push((hash, meta.len(), mtime));
        }
    }
    Ok(out)
}

impl Store {
    /// Opens (creating) the store under `data_dir`, with no quota until
    /// [`set_quota`](Self::set_quota). sled admits one process per directory; a second
    /// opener gets an error.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let segments_dir = data_dir.join("segments");
        reelnet_runtime::fs::create_private_dir(data_dir).map_err(io(data_dir))?;
        std::fs::create_dir_all(&segments_dir).map_err(io(&segments_dir))?;
        // sled creates its files with the process umask: the directory is made 0700 first
        // and whatever sled created is narrowed once it is open.
        let db_dir = data_dir.join("db");
        reelnet_runtime::fs::create_private_dir(&db_dir).map_err(io(&db_dir))?;
        let db = sled::open(&db_dir)?;
        reelnet_runtime::fs::restrict_tree(&db_dir).map_err(io(&db_dir))?;
        let store = Self {
            manifests: db.open_tree("manifests")?,
            latest: db.open_tree("latest")?,
            released: db.open_tree("released")?,
            db,
            index: Arc::new(Mutex::new(Index {
                quota: u64::MAX,
                ..Index::default()
            })),
            health: Arc::new(Health::default()),
            segments_dir,
        };
        store.rebuild_index()?;
        Ok(store)
    }

    fn rebuild_index(&self) -> Result<(), StoreError> {
        let mut files = scan_segments(&self.segments_dir)?;
        files.sort_by_key(|f| f.2);
        let mut pins = Vec::new();
        for m in self.all_manifests()? {
            let key = ingest_key(&m.manifest);
            if !self.released.contains_key(&key)? {
                pins.push((key, segment_hashes(&m.manifest)));
            }
        }
        let mut index = self.lock();
        for (key, hashes) in pins {
            index.pin_ingest(key, hashes);
        }
        for (hash, size, _) in files {
            let pinned = index.refs.contains_key(&hash);
            index.insert(hash, size, pinned);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the most segment bytes the store may hold. Lowering it below what is stored
    /// evicts cache at the next write; pinned data stays.
    pub fn set_quota(&self, bytes: u64) {
        self.lock().quota = bytes;
    }

    /// Bytes in use, pinned and cached, and the quota.
    pub fn usage(&self) -> StoreUsage {
        let i = self.lock();
        StoreUsage {
            used_bytes: i.used,
            pinned_bytes: i.pinned,
            cache_bytes: i.used - i.pinned,
            quota_bytes: i.quota,
            segments: i.entries.len() as u64,
            cached_segments: i.lru.len() as u64,
            evictions: i.evictions,
            reserved_bytes: i.reserved,
        }
    }

    /// Holds `bytes` of the quota back for data written outside the segment store (a
    /// torrent download that feeds an ingest) until the [`Reservation`] is dropped: segment
    /// writes meanwhile see that much less room, and evict cache for it. Fails with
    /// [`StoreError::QuotaExceeded`] when `bytes` do not fit beside the pinned data and the
    /// other reservations (cache does not count: it is evicted as writes need the room).
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, StoreError> {
        let mut index = self.lock();
        let floor = index.pinned.saturating_add(index.reserved);
        if floor.saturating_add(bytes) > index.quota {
            return Err(StoreError::QuotaExceeded {
                needed: bytes,
                pinned: floor,
                quota: index.quota,
            });
        }
        index.reserved += bytes;
        Ok(Reservation {
            store: self.clone(),
            bytes,
        })
    }

    /// Whether the segment is stored and pinned (`Some(true)`), cached (`Some(false)`).
    pub fn segment_pinned(&self, hash: &SegmentHash) -> Option<bool> {
        self.lock().entries.get(hash).map(|e| e.pinned)
    }

    /// Where a segment's bytes live (whether or not they are there).
    pub fn segment_path(&self, hash: &SegmentHash) -> PathBuf {
        let hex = hash.to_string();
        self.segments_dir.join(&hex[..2]).join(hex)
    }

    /// Whether the store holds the segment (per its index).
    pub fn has_segment(&self, hash: &SegmentHash) -> bool {
        self.lock().entries.contains_key(hash)
    }

    /// Stores segment bytes, pinned (own ingests, placement); with `expected`, refuses
    /// bytes that do not hash to it. Idempotent (a cached copy becomes pinned). Evicts
    /// cache to make room; fails with [`StoreError::QuotaExceeded`] when the bytes cannot
    /// fit beside the pinned data. Returns the hash and whether the bytes were new.
    pub fn put_segment(
        &self,
        bytes: &[u8],
        expected: Option<&SegmentHash>,
    ) -> Result<(SegmentHash, bool), StoreError> {
        self.put(bytes, expected, true)
    }

    /// Stores segment bytes fetched for a viewer as evictable cache (pinned anyway if a
    /// pinned manifest names them), refusing bytes that do not hash to `expected`. Evicts
    /// older cache to make room; [`StoreError::QuotaExceeded`] when pinned data leaves no
    /// room. Returns the hash and whether the bytes were new; an existing copy is touched.
    pub fn put_cached_segment(
        &self,
        bytes: &[u8],
        expected: &SegmentHash,
    ) -> Result<(SegmentHash, bool), StoreError> {
        self.put(bytes, Some(expected), false)
    }

    /// Marks a cached segment as just used (no-op for pinned or absent segments).
    pub fn touch(&self, hash: &SegmentHash) {
        self.lock().touch(hash);
    }

    fn put(
        &self,
        bytes: &[u8],
        expected: Option<&SegmentHash>,
        pin: bool,
    ) -> Result<(SegmentHash, bool), StoreError> {
        let mut result = self.put_once(bytes, expected, pin);
        if let Err(StoreError::DiskFull { .. }) = &result {
            // The file system filled before the quota did: cache is the room this node may
            // give back. Evict some (twice what this write needs) and try once more.
            let need = (bytes.len() as u64).saturating_mul(2);
            let evicted = self.lock().evict_cache(need);
            if !evicted.is_empty() {
                tracing::info!(
                    evicted = evicted.len(),
                    "disk full: evicted cached segments to make room"
                );
                for h in &evicted {
                    self.remove_files(h);
                }
                result = self.put_once(bytes, expected, pin);
            }
        }
        match &result {
            Err(StoreError::QuotaExceeded { .. }) => {
                self.health.full_quota.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.is_full() => {
                self.health.full_disk.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(err = %e, "segment not stored: the disk is full");
            }
            _ => {}
        }
        result
    }

    /// Segment writes refused for want of room since the store was opened.
    pub fn full_writes(&self) -> FullWrites {
        FullWrites {
            quota: self.health.full_quota.load(Ordering::Relaxed),
            disk: self.health.full_disk.load(Ordering::Relaxed),
        }
    }

    fn put_once(
        &self,
        bytes: &[u8],
        expected: Option<&SegmentHash>,
        pin: bool,
    ) -> Result<(SegmentHash, bool), StoreError> {
        // One pass over the bytes gives the hash and the outboard.
        let (hash, outboard) = Outboard::compute(bytes);
        if let Some(expected) = expected {
            if *expected != hash {
                return Err(StoreError::HashMismatch {
                    expected: *expected,
                    actual: hash,
                });
            }
        }
        let path = self.segment_path(&hash);
        let size = bytes.len() as u64;
        {
            let mut index = self.lock();
            if index.entries.contains_key(&hash) && path.is_file() {
                if pin {
                    index.set_pinned(&hash, true);
                } else {
                    index.touch(&hash);
                }
                return Ok((hash, false));
            }
            // Known but gone from disk: forget it and write it again.
            index.remove(&hash);
            for h in index.make_room(size)? {
                self.remove_files(&h);
            }
            index.reserved += size;
        }
        // The outboard first: a crash between the two leaves an orphan outboard (harmless,
        // rewritten with the segment) rather than a segment without one (rebuilt lazily).
        let ob = outboard.to_bytes();
        let written = if ob.is_empty() {
            Ok(())
        } else {
            self.write_file(&self.outboard_path(&hash), &hash, &ob)
        }
        .and_then(|()| self.write_file(&path, &hash, bytes));
        let mut index = self.lock();
        index.reserved -= size;
        if written.is_err() && !path.is_file() {
            // No segment without its outboard, and no outboard left without its segment.
            let _ = std::fs::remove_file(self.outboard_path(&hash));
        }
        written?;
        if !index.entries.contains_key(&hash) {
            let pinned = pin || index.refs.contains_key(&hash);
            index.insert(hash, size, pinned);
        } else if pin {
            index.set_pinned(&hash, true);
        }
        Ok((hash, true))
    }

    fn write_file(&self, path: &Path, hash: &SegmentHash, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = path.parent().unwrap_or(&self.segments_dir).to_owned();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{hash}.{}.tmp", rand::random::<u64>()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            file.write_all(bytes).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
            std::fs::rename(&tmp, path).map_err(io(path))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Reads a segment, checking its hash; a corrupt file is dropped, counted and reported
    /// missing (see "Rot at rest"). A cached segment counts as used.
    pub fn read_segment(&self, hash: &SegmentHash) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = self.read_file(hash)? else {
            return Ok(None);
        };
        if SegmentHash::of(&bytes) != *hash {
            self.drop_corrupt_segment(hash);
            return Ok(None);
        }
        self.touch(hash);
        Ok(Some(bytes))
    }

    /// Where a segment's outboard lives (segments of one group or less have none).
    pub fn outboard_path(&self, hash: &SegmentHash) -> PathBuf {
        let mut p = self.segment_path(hash).into_os_string();
        p.push(".obao");
        PathBuf::from(p)
    }

    fn remove_files(&self, hash: &SegmentHash) {
        let _ = std::fs::remove_file(self.segment_path(hash));
        let _ = std::fs::remove_file(self.outboard_path(hash));
    }

    /// Opens a segment for a verified streaming read: its outboard is loaded and checked
    /// against `hash` (or, missing or bad, rebuilt from the whole file). `Ok(None)`: not
    /// stored (or found corrupt while rebuilding, and removed). Each block the reader returns
    /// has passed its group checks; a group that fails removes the segment from the store and
    /// ends the read with [`StoreError::Corrupt`]. A cached segment counts as used.
    pub fn open_verified(&self, hash: &SegmentHash) -> Result<Option<VerifiedReader>, StoreError> {
        let path = self.segment_path(hash);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lock().remove(hash);
                return Ok(None);
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let size = file.metadata().map_err(io(&path))?.len();
        let outboard = match self.load_outboard(hash, size)? {
            Some(ob) => ob,
            None => {
                // No (valid) outboard: an older store. Hash the file whole and write one.
                let Some(bytes) = self.read_segment(hash)? else {
                    return Ok(None);
                };
                let (_, ob) = Outboard::compute(&bytes);
                let raw = ob.to_bytes();
                if !raw.is_empty() {
                    if let Err(err) = self.write_file(&self.outboard_path(hash), hash, &raw) {
                        tracing::warn!(%hash, %err, "cannot write a rebuilt outboard");
                    }
                }
                tracing::debug!(%hash, "outboard rebuilt");
                return Ok(Some(VerifiedReader {
                    store: self.clone(),
                    hash: *hash,
                    source: ReaderSource::Whole(Some(bytes)),
                    outboard: ob,
                    offset: 0,
                    rebuilt: true,
                }));
            }
        };
        self.touch(hash);
        Ok(Some(VerifiedReader {
            store: self.clone(),
            hash: *hash,
            source: ReaderSource::File(file),
            outboard,
            offset: 0,
            rebuilt: false,
        }))
    }

    /// The stored outboard of a `size`-byte segment, checked against `hash`; `None` when
    /// it is missing or does not match (the caller rebuilds it).
    fn load_outboard(&self, hash: &SegmentHash, size: u64) -> Result<Option<Outboard>, StoreError> {
        if reelnet_proto::outboard::outboard_len(size) == 0 {
            return Ok(Outboard::decode(&[], size, hash).ok());
        }
        let path = self.outboard_path(hash);
        let raw = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        match Outboard::decode(&raw, size, hash) {
            Ok(ob) => Ok(Some(ob)),
            Err(err) => {
                // A damaged outboard, or a segment file of the wrong length: rebuilding
                // from the whole file tells which (and drops a bad segment).
                tracing::warn!(%hash, %err, "stored outboard does not match; rebuilding");
                Ok(None)
            }
        }
    }

    /// A segment's verified bytes and outboard (read whole; for the segment service).
    pub fn read_with_outboard(
        &self,
        hash: &SegmentHash,
    ) -> Result<Option<(Vec<u8>, Outboard)>, StoreError> {
        let Some(mut reader) = self.open_verified(hash)? else {
            return Ok(None);
        };
        let size = usize::try_from(reader.size()).unwrap_or(0);
        let mut bytes = Vec::with_capacity(size);
        loop {
            match reader.next_block() {
                Ok(Some(block)) => bytes.extend_from_slice(&block),
                Ok(None) => break,
                Err(StoreError::Corrupt(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some((bytes, reader.outboard)))
    }

    /// A segment's bytes WITHOUT a hash check of the body, straight into [`Bytes`], with its
    /// stored outboard (checked against `hash`, which costs one chaining value per 16 KiB
    /// group): for the QUIC segment server, whose every receiver verifies every group and
    /// reports a failed check back. Without a valid stored outboard the segment is read and
    /// verified whole ([`read_with_outboard`](Self::read_with_outboard)), which rebuilds it.
    pub fn read_unchecked_with_outboard(
        &self,
        hash: &SegmentHash,
    ) -> Result<Option<(Bytes, Outboard)>, StoreError> {
        let Some(bytes) = self.read_segment_unchecked(hash)? else {
            return Ok(None);
        };
        match self.load_outboard(hash, bytes.len() as u64)? {
            Some(outboard) => Ok(Some((bytes, outboard))),
            None => Ok(self
                .read_with_outboard(hash)?
                .map(|(bytes, ob)| (Bytes::from(bytes), ob))),
        }
    }

    /// Reads a segment WITHOUT checking its hash, straight into [`Bytes`] (no copy). Only
    /// for senders whose every receiver verifies every byte and reports a failed check back
    /// (the QUIC segment server); everything else uses [`read_segment`](Self::read_segment).
    pub fn read_segment_unchecked(&self, hash: &SegmentHash) -> Result<Option<Bytes>, StoreError> {
        let bytes = self.read_file(hash)?;
        if bytes.is_some() {
            self.touch(hash);
        }
        Ok(bytes.map(Bytes::from))
    }

    /// Re-reads a segment with the hash check: `Some(true)` when the copy is good,
    /// `Some(false)` when it was corrupt (now dropped and counted), `None` when absent.
    pub fn check_segment(&self, hash: &SegmentHash) -> Result<Option<bool>, StoreError> {
        let Some(bytes) = self.read_file(hash)? else {
            return Ok(None);
        };
        if SegmentHash::of(&bytes) != *hash {
            self.drop_corrupt_segment(hash);
            return Ok(Some(false));
        }
        Ok(Some(true))
    }

    /// The file's bytes; `None` (and the index entry forgotten) when it is gone.
    fn read_file(&self, hash: &SegmentHash) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.segment_path(hash);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lock().remove(hash);
                Ok(None)
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Removes a segment that failed its check (file, outboard and index entry), counts it
    /// and wakes placement to fetch it again.
    fn drop_corrupt_segment(&self, hash: &SegmentHash) {
        tracing::warn!(%hash, "stored segment is corrupt (hash mismatch); dropping it to fetch a good copy");
        {
            let mut index = self.lock();
            self.remove_files(hash);
            index.remove(hash);
        }
        self.health.segments.fetch_add(1, Ordering::Relaxed);
        self.health.lost.notify_one();
    }

    /// Corrupt copies found since the store was opened, and the scrub's progress.
    pub fn corruption(&self) -> Corruption {
        let h = &self.health;
        Corruption {
            segments: h.segments.load(Ordering::Relaxed),
            manifests: h.manifests.load(Ordering::Relaxed),
            scrubbed_bytes: h.scrubbed_bytes.load(Ordering::Relaxed),
            scrub_passes: h.scrub_passes.load(Ordering::Relaxed),
        }
    }

    /// Resolves when a corrupt copy has been dropped since the last call (one waiter:
    /// placement, which then fetches what this node must hold again).
    pub async fn lost(&self) {
        self.health.lost.notified().await;
    }

    /// Records scrub progress (`bytes` checked; `pass_done` at the end of a full pass).
    pub(crate) fn record_scrub(&self, bytes: u64, pass_done: bool) {
        self.health
            .scrubbed_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if pass_done {
            self.health.scrub_passes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every segment in the index with its size (a snapshot, for the scrub).
    pub fn segment_list(&self) -> Vec<(SegmentHash, u64)> {
        self.lock()
            .entries
            .iter()
            .map(|(h, e)| (*h, e.size))
            .collect()
    }

    /// The ids of every stored manifest record (a snapshot, for the scrub).
    pub fn manifest_ids(&self) -> Result<Vec<ManifestId>, StoreError> {
        let mut out = Vec::new();
        for key in self.manifests.iter().keys() {
            let key = key?;
            if let Ok(raw) = <[u8; 32]>::try_from(key.as_ref()) {
                out.push(ManifestId(raw));
            }
        }
        Ok(out)
    }

    /// Overwrites the stored record of manifest `id` with `bytes` as they are, unchecked:
    /// fault injection for tests of the rot detection (a flipped bit on disk). Never used by
    /// the node itself.
    #[doc(hidden)]
    pub fn inject_manifest_record(&self, id: &ManifestId, bytes: &[u8]) -> Result<(), StoreError> {
        self.manifests.insert(id.as_bytes(), bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// The raw stored record of manifest `id` (for [`inject_manifest_record`](Self::inject_manifest_record)).
    #[doc(hidden)]
    pub fn manifest_record(&self, id: &ManifestId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.manifests.get(id.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Verifies and stores a signed manifest; it becomes its ingest's newest version when
    /// its sequence number is higher. Storing a manifest pins its ingest (undoing
    /// [`release_ingest`](Self::release_ingest)): every segment the newest version names is
    /// kept. Durable when this returns.
    pub fn put_manifest(&self, signed: &SignedManifest) -> Result<StoredManifest, StoreError> {
        let manifest = signed
            .verify()
            .map_err(|e| StoreError::BadManifest(e.to_string()))?;
        let id = signed.id();
        self.manifests.insert(id.as_bytes(), signed.encode())?;
        let key = ingest_key(&manifest);
        let current = self.latest.get(&key)?;
        let same = current
            .as_ref()
            .is_some_and(|c| c.as_ref() == id.as_bytes().as_slice());
        let newer = match &current {
            _ if same => false,
            Some(current) => match self.manifest_by_raw_id(current)? {
                Some(cur) => manifest.seq > cur.manifest.seq,
                None => true,
            },
            None => true,
        };
        let mut newest = None;
        if same {
            // Stored again (e.g. re-pinned): nothing changes in sled.
        } else if newer {
            if let Some(old) = self.latest.insert(key.clone(), id.as_bytes().as_slice())? {
                // The previous version is superseded; drop it.
                if old.as_ref() != id.as_bytes().as_slice() {
                    self.manifests.remove(old)?;
                }
            }
            newest = Some(segment_hashes(&manifest));
        } else {
            self.manifests.remove(id.as_bytes())?;
        }
        let was_released = self.released.remove(&key)?.is_some();
        self.db.flush()?;
        if newest.is_none() && was_released {
            // Re-pin the version we keep.
            if let Some(cur) = self.latest.get(&key)? {
                if let Some(cur) = self.manifest_by_raw_id(&cur)? {
                    newest = Some(segment_hashes(&cur.manifest));
                }
            }
        }
        if let Some(hashes) = newest {
            self.lock().pin_ingest(key, hashes);
        }
        Ok(StoredManifest {
            id,
            manifest,
            signed: signed.clone(),
        })
    }

    /// Unpins an ingest this node is no longer responsible for: its manifest stays (so the
    /// node still serves what it has), its segments become evictable cache. Durable.
    pub fn release_ingest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let key = ingest_key(manifest);
        self.released.insert(key.as_slice(), &[])?;
        self.db.flush()?;
        self.lock().unpin_ingest(&key);
        Ok(())
    }

    /// Whether [`release_ingest`](Self::release_ingest) released this ingest (and no
    /// manifest of it was stored since).
    pub fn is_released(&self, manifest: &Manifest) -> Result<bool, StoreError> {
        Ok(self.released.contains_key(ingest_key(manifest))?)
    }

    /// A stored manifest record, checked: it must decode, hash to its id and carry a valid
    /// signature. A record failing any of these is rot at rest (it was all checked when
    /// stored): it is dropped, counted and announced, and reads as absent.
    fn manifest_by_raw_id(&self, raw: &[u8]) -> Result<Option<StoredManifest>, StoreError> {
        let Some(bytes) = self.manifests.get(raw)? else {
            return Ok(None);
        };
        let checked = SignedManifest::decode(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|signed| {
                if signed.id().as_bytes().as_slice() != raw {
                    return Err(format!("record hashes to {}, not to its key", signed.id()));
                }
                let manifest = signed.verify().map_err(|e| e.to_string())?;
                Ok((signed, manifest))
            });
        match checked {
            Ok((signed, manifest)) => Ok(Some(StoredManifest {
                id: signed.id(),
                manifest,
                signed,
            })),
            Err(reason) => {
                self.drop_corrupt_manifest(raw, &reason)?;
                Ok(None)
            }
        }
    }

    fn drop_corrupt_manifest(&self, raw: &[u8], reason: &str) -> Result<(), StoreError> {
        tracing::warn!(
            manifest = %hex_id(raw),
            %reason,
            "stored manifest record is corrupt; dropping it to fetch a good copy"
        );
        self.manifests.remove(raw)?;
        // The ingest it was the newest version of cannot be read from the bad record: find
        // it by value. Its segments stay pinned until a good copy is stored again.
        let mut stale = Vec::new();
        for item in self.latest.iter() {
            let (key, id) = item?;
            if id.as_ref() == raw {
                stale.push(key);
            }
        }
        for key in stale {
            self.latest.remove(key)?;
        }
        self.db.flush()?;
        self.health.manifests.fetch_add(1, Ordering::Relaxed);
        self.health.lost.notify_one();
        Ok(())
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

    /// Makes every write so far durable (the last step of a node's shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Forgets every version of one ingest (a failed ingest leaves no manifest behind).
    /// Its segments become evictable cache.
    pub fn remove_ingest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let key = ingest_key(manifest);
        if let Some(id) = self.latest.remove(&key)? {
            self.manifests.remove(id)?;
        }
        self.released.remove(&key)?;
        self.db.flush()?;
        self.lock().unpin_ingest(&key);
        Ok(())
    }
}

/// Bytes read per [`VerifiedReader::next_block`]: 16 groups.
pub const READ_BLOCK: usize = 16 * reelnet_proto::outboard::GROUP_LEN;

enum ReaderSource {
    File(std::fs::File),
    /// Already read whole and hashed (the outboard was rebuilt): handed out in one block.
    Whole(Option<Vec<u8>>),
}

/// A segment being read from disk block by block, each block checked against the outboard
/// before it is returned ([`Store::open_verified`]).
pub struct VerifiedReader {
    store: Store,
    hash: SegmentHash,
    source: ReaderSource,
    outboard: Outboard,
    offset: u64,
    rebuilt: bool,
}

impl VerifiedReader {
    /// The segment's size.
    pub fn size(&self) -> u64 {
        self.outboard.size()
    }

    /// Whether the outboard was missing and has just been rebuilt.
    pub fn rebuilt(&self) -> bool {
        self.rebuilt
    }

    /// The next verified block (at most [`READ_BLOCK`] bytes), `None` at the end. A block
    /// that fails its check (or a file that ends early) removes the segment from the store
    /// and returns [`StoreError::Corrupt`].
    pub fn next_block(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        use std::io::Read;
        let file = match &mut self.source {
            ReaderSource::Whole(bytes) => return Ok(bytes.take()),
            ReaderSource::File(f) => f,
        };
        let size = self.outboard.size();
        if self.offset >= size {
            return Ok(None);
        }
        let want = usize::try_from((size - self.offset).min(READ_BLOCK as u64)).unwrap_or(0);
        // Read into spare capacity (`File` reads into uninitialised memory): zeroing each
        // block first was 5 % of the gateway's CPU on the disk path.
        let mut block = Vec::with_capacity(want);
        Read::take(&mut *file, want as u64)
            .read_to_end(&mut block)
            .map_err(io(&self.store.segment_path(&self.hash)))?;
        let got = block.len();
        let first = usize::try_from(self.offset).unwrap_or(0) / reelnet_proto::outboard::GROUP_LEN;
        let ok = got == want
            && block
                .chunks(reelnet_proto::outboard::GROUP_LEN)
                .enumerate()
                .all(|(i, g)| self.outboard.verify_group(&self.hash, first + i, g));
        if !ok {
            tracing::warn!(hash = %self.hash, offset = self.offset, "stored segment is corrupt; removing it");
            self.store.drop_corrupt_segment(&self.hash);
            self.offset = size;
            return Err(StoreError::Corrupt(self.hash));
        }
        self.offset += want as u64;
        Ok(Some(block))
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
            version: reelnet_proto::manifest::MANIFEST_VERSION,
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
                kind: reelnet_proto::manifest::TrackKind::Video,
                media: None,
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
            meta: Default::default(),
        }
    }

    /// A full file system is told apart from other I/O errors (so jobs can say "no room"),
    /// and writes refused by the quota are counted for `reelnet_store_full_total`.
    #[test]
    fn full_disk_and_quota_are_typed_and_counted() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert!(is_no_space(&enospc));
        assert!(is_no_space(&std::io::Error::from_raw_os_error(122)));
        assert!(!is_no_space(&std::io::Error::from_raw_os_error(5)));
        let e = io(Path::new("/x"))(enospc);
        assert!(
            matches!(e, StoreError::DiskFull { .. }) && e.is_full(),
            "{e}"
        );
        let e = io(Path::new("/x"))(std::io::Error::from_raw_os_error(5));
        assert!(matches!(e, StoreError::Io { .. }) && !e.is_full());

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_quota(10);
        store.put_segment(b"12345678", None).unwrap();
        let err = store.put_segment(b"abcdefgh", None).unwrap_err();
        assert!(err.is_full(), "{err}");
        assert_eq!(store.full_writes(), FullWrites { quota: 1, disk: 0 });
        // Nothing of the refused write is on disk or counted.
        assert_eq!(store.usage().used_bytes, 8);
        assert!(!store.has_segment(&SegmentHash::of(b"abcdefgh")));
        // Room returns: the same write succeeds.
        store.set_quota(100);
        store.put_segment(b"abcdefgh", None).unwrap();
        assert_eq!(store.usage().used_bytes, 16);
    }

    /// A reservation (a download under way) counts against the quota until dropped:
    /// segment writes evict cache for it, pinned writes that no longer fit fail, and a
    /// reservation larger than what pinned data leaves is refused up front.
    #[test]
    fn reservations_count_against_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_quota(100);
        let seg = |b: u8| vec![b; 30];
        let (cached, _) = store
            .put_cached_segment(&seg(1), &SegmentHash::of(&seg(1)))
            .unwrap();
        store.put_segment(&seg(2), None).unwrap();
        // 30 pinned: 71 do not fit, 70 do (the cache would be evicted as writes need it).
        let err = store.reserve(71).unwrap_err();
        assert!(
            matches!(err, StoreError::QuotaExceeded { needed: 71, .. }),
            "{err}"
        );
        let held = store.reserve(40).unwrap();
        assert_eq!(held.bytes(), 40);
        assert_eq!(store.usage().reserved_bytes, 40);
        assert!(
            store.reserve(31).is_err(),
            "30 pinned + 40 reserved + 31 > 100"
        );
        // A pinned write now needs the cache's room: the cached segment goes.
        store.put_segment(&seg(3), None).unwrap();
        assert!(!store.has_segment(&cached));
        let err = store.put_segment(&seg(4), None).unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
        drop(held);
        assert_eq!(store.usage().reserved_bytes, 0);
        store.put_segment(&seg(4), None).unwrap();
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

    /// A flipped bit in a stored manifest record (or in a segment) is caught when read: the
    /// record is dropped and counted, reads see no manifest, the store still opens, and the
    /// segments stay pinned until a good copy is stored again.
    #[test]
    fn a_corrupt_manifest_record_is_dropped_and_counted_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let (seg, _) = {
            let store = Store::open(dir.path()).unwrap();
            store.put_segment(b"abc", None).unwrap()
        };
        let signed = SignedManifest::sign(&manifest(&key, 1, &[seg]), &key).unwrap();
        let id = signed.id();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_manifest(&signed).unwrap();
            let mut raw = store.manifest_record(&id).unwrap().unwrap();
            let at = raw.len() / 2;
            raw[at] ^= 0x04;
            store.inject_manifest_record(&id, &raw).unwrap();
        }
        // Reopening reads every manifest: the bad one is dropped, not a failure to open.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.corruption().manifests, 1);
        assert!(store.manifest(&id).unwrap().is_none());
        assert!(store.all_manifests().unwrap().is_empty());
        assert!(store.manifest_record(&id).unwrap().is_none());
        // Its segments are kept, as cache, until a good copy of the manifest is stored again
        // (placement fetches it); then they are pinned again.
        assert_eq!(store.segment_pinned(&seg), Some(false));
        // A good copy stored again is the ingest's newest version.
        store.put_manifest(&signed).unwrap();
        assert_eq!(store.all_manifests().unwrap().len(), 1);
        assert_eq!(store.segment_pinned(&seg), Some(true));
        assert_eq!(store.corruption().manifests, 1);
        // Segments: a flipped bit is found by a read, or by a check.
        let (other, _) = store.put_segment(b"defgh", None).unwrap();
        for (h, flip) in [(seg, true), (other, false)] {
            let path = store.segment_path(&h);
            let mut b = std::fs::read(&path).unwrap();
            b[1] ^= 0x80;
            std::fs::write(&path, &b).unwrap();
            if flip {
                assert!(store.read_segment(&h).unwrap().is_none());
            } else {
                assert_eq!(store.check_segment(&h).unwrap(), Some(false));
            }
            assert!(!store.has_segment(&h) && !path.exists());
        }
        assert_eq!(store.corruption().segments, 2);
        assert_eq!(store.check_segment(&seg).unwrap(), None);
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

    #[test]
    fn cache_is_evicted_oldest_first_and_pinned_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_quota(100);
        let seg = |b: u8| vec![b; 30];
        let (a, _) = store
            .put_cached_segment(&seg(1), &SegmentHash::of(&seg(1)))
            .unwrap();
        let (b, _) = store
            .put_cached_segment(&seg(2), &SegmentHash::of(&seg(2)))
            .unwrap();
        let (c, _) = store
            .put_cached_segment(&seg(3), &SegmentHash::of(&seg(3)))
            .unwrap();
        // `a` was used last, so `b` is the oldest.
        assert_eq!(store.read_segment(&a).unwrap().unwrap(), seg(1));
        let (d, _) = store.put_segment(&seg(4), None).unwrap();
        let u = store.usage();
        assert_eq!((u.used_bytes, u.pinned_bytes, u.cache_bytes), (90, 30, 60));
        assert!(!store.has_segment(&b) && !store.segment_path(&b).exists());
        assert!(store.has_segment(&a) && store.has_segment(&c) && store.has_segment(&d));
        // A touched cache entry outlives an untouched one.
        store.touch(&c);
        store.put_segment(&seg(5), None).unwrap();
        assert!(!store.has_segment(&a) && store.has_segment(&c));
        assert_eq!(store.segment_pinned(&d), Some(true));
        // Pinned data beyond the quota is refused, and nothing is evicted for it.
        store.put_segment(&seg(6), None).unwrap(); // evicts c
        assert!(!store.has_segment(&c));
        let u = store.usage();
        assert_eq!((u.used_bytes, u.pinned_bytes, u.evictions), (90, 90, 3));
        let err = store.put_segment(&seg(7), None).unwrap_err();
        assert!(
            matches!(err, StoreError::QuotaExceeded { needed: 30, .. }),
            "{err}"
        );
        let err = store
            .put_cached_segment(&seg(8), &SegmentHash::of(&seg(8)))
            .unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
        assert_eq!(store.usage().used_bytes, 90);
        // Cached bytes with a wrong hash are refused too.
        assert!(matches!(
            store.put_cached_segment(&seg(9), &a),
            Err(StoreError::HashMismatch { .. })
        ));
    }

    #[test]
    fn manifests_pin_their_segments_until_released_and_the_index_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let (x, y, z) = (vec![1u8; 40], vec![2u8; 40], vec![3u8; 40]);
        let (hx, hy, hz) = (
            SegmentHash::of(&x),
            SegmentHash::of(&y),
            SegmentHash::of(&z),
        );
        {
            let store = Store::open(dir.path()).unwrap();
            // Fetched for a viewer first, then named by a stored manifest: pinned.
            store.put_cached_segment(&x, &hx).unwrap();
            store.put_cached_segment(&y, &hy).unwrap();
            assert_eq!(store.usage().cache_bytes, 80);
            let m = SignedManifest::sign(&manifest(&key, 1, &[hx, hy]), &key).unwrap();
            store.put_manifest(&m).unwrap();
            assert_eq!(store.usage().pinned_bytes, 80);
            store.put_cached_segment(&z, &hz).unwrap();
            let u = store.usage();
            assert_eq!((u.pinned_bytes, u.cache_bytes), (80, 40));
        }
        // Reopened: the index is rebuilt from disk and sled.
        let store = Store::open(dir.path()).unwrap();
        let u = store.usage();
        assert_eq!((u.used_bytes, u.pinned_bytes, u.cache_bytes), (120, 80, 40));
        let stored = store.all_manifests().unwrap().remove(0);
        store.release_ingest(&stored.manifest).unwrap();
        assert!(store.is_released(&stored.manifest).unwrap());
        assert_eq!(store.usage().pinned_bytes, 0);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.usage().cache_bytes, 120);
        // Evictable now: a small quota makes room for a pinned write (one of the three
        // cached segments goes; they have no recorded use, so which one is unspecified).
        store.set_quota(130);
        store.put_segment(&[4u8; 40], None).unwrap();
        let u = store.usage();
        assert_eq!(
            (u.used_bytes, u.pinned_bytes, u.evictions),
            (120, 40, 1),
            "{u:?}"
        );
        // Storing the manifest again pins what is left of it.
        store.put_manifest(&stored.signed).unwrap();
        assert!(!store.is_released(&stored.manifest).unwrap());
        assert!(store.usage().pinned_bytes > 40);
    }
}
