//! Copying a whole store from one engine to another (`reelnet-tracker migrate --to`):
//! every tree in [`super::TREE_NAMES`] key by key, values as the same versioned codec
//! bytes, then the id generator, then a count of both sides per tree.
//!
//! The copy bypasses the writer (no tracker may use either side while it runs): it writes
//! [`COPY_BATCH`] entries per engine batch (one sled batch, one PostgreSQL statement),
//! and the caller makes the destination durable (its [`super::Writer`]'s last commit)
//! before reporting success. It never merges: a destination that already holds any
//! record is refused before anything is written.

use super::kv::Entry;
use super::{Engine, Store, StoreError, TREE_NAMES};

/// Entries written per engine batch.
pub const COPY_BATCH: usize = 1000;

/// One tree's record count on each side after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCount {
    pub tree: &'static str,
    pub source: usize,
    pub destination: usize,
}

/// What a copy did: a count per tree, in [`TREE_NAMES`] order.
#[derive(Debug, Clone)]
pub struct CopyReport {
    pub trees: Vec<TreeCount>,
}

impl CopyReport {
    /// Whether every tree holds as many records on both sides.
    pub fn matches(&self) -> bool {
        self.trees.iter().all(|t| t.source == t.destination)
    }

    /// The totals (source, destination).
    pub fn totals(&self) -> (usize, usize) {
        self.trees
            .iter()
            .fold((0, 0), |(s, d), t| (s + t.source, d + t.destination))
    }
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The destination already holds records: a copy never merges into a database.
    #[error(
        "the destination already holds {count} record(s) in {tree:?}: migrate copies into \
         an empty database only (never into one a tracker uses); nothing was written"
    )]
    NotEmpty { tree: &'static str, count: usize },
    /// The source is a sled database another process (a running tracker) has open.
    #[error(
        "the tracker database in {0} is in use — is the tracker running? Stop it first: \
         migrate copies a stopped tracker's store"
    )]
    Locked(std::path::PathBuf),
    #[error("cannot open the source store: {0}")]
    OpenSource(StoreError),
    #[error("cannot open the destination store: {0}")]
    OpenDestination(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens `source` and `dest`, copies the one into the other ([`Store::copy_into`]) and
/// waits until the destination is durable (sled: flushed and synced; PostgreSQL: every
/// batch committed). A failure after the first write can leave a partial destination:
/// nothing else uses it, so the operator drops it and runs the command again.
pub async fn migrate(source: &Engine, dest: &Engine) -> Result<CopyReport, CopyError> {
    let (src, src_writer) = Store::open_engine(source).map_err(|e| match (source, e) {
        (Engine::Sled { dir, .. }, e) if e.is_locked() => CopyError::Locked(dir.clone()),
        (_, e) => CopyError::OpenSource(e),
    })?;
    let (dst, dst_writer) = Store::open_engine(dest).map_err(|e| match (dest, e) {
        (Engine::Sled { dir, .. }, e) if e.is_locked() => CopyError::Locked(dir.clone()),
        (_, e) => CopyError::OpenDestination(e),
    })?;
    drop(src_writer);
    let report = tokio::task::spawn_blocking(move || src.copy_into(&dst))
        .await
        .map_err(|e| StoreError::Db(format!("the copy panicked: {e}")))?;
    // Every destination handle is gone: the writer's run is its last commit.
    dst_writer.run().await?;
    report
}

impl Store {
    /// Copies every tree of this store into `dest` (blocking: call from a blocking thread
    /// or a multi-threaded runtime) and counts both sides. `dest` must be empty. The
    /// caller flushes `dest` (drops it and awaits its writer) before trusting the copy.
    pub fn copy_into(&self, dest: &Store) -> Result<CopyReport, CopyError> {
        for &tree in TREE_NAMES {
            let count = dest.trees.db.open_tree(tree)?.len()?;
            if count > 0 {
                return Err(CopyError::NotEmpty { tree, count });
            }
        }
        for &tree in TREE_NAMES {
            let from = self.trees.db.open_tree(tree)?;
            let to = dest.trees.db.open_tree(tree)?;
            let mut batch: Vec<Entry> = Vec::with_capacity(COPY_BATCH);
            for entry in from.iter() {
                batch.push(entry?);
                if batch.len() == COPY_BATCH {
                    to.insert_batch(std::mem::take(&mut batch))?;
                }
            }
            if !batch.is_empty() {
                to.insert_batch(batch)?;
            }
        }
        // Ids stay unique: the destination hands out only ids above every one the
        // source handed out (drawing one from the source costs a gap of one).
        let floor = self.trees.db.generate_id()?;
        dest.trees.db.raise_ids_above(floor)?;
        let mut trees = Vec::with_capacity(TREE_NAMES.len());
        for &tree in TREE_NAMES {
            trees.push(TreeCount {
                tree,
                source: self.trees.db.open_tree(tree)?.len()?,
                destination: dest.trees.db.open_tree(tree)?.len()?,
            });
        }
        Ok(CopyReport { trees })
    }

    /// Every (tree, key, value) of the store, trees in [`TREE_NAMES`] order and keys in
    /// key order: for comparing two stores byte for byte.
    pub fn entries(&self) -> Result<Vec<(&'static str, Entry)>, StoreError> {
        let mut out = Vec::new();
        for &tree in TREE_NAMES {
            for entry in self.trees.db.open_tree(tree)?.iter() {
                out.push((tree, entry?));
            }
        }
        Ok(out)
    }
}
