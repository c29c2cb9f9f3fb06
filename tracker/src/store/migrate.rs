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
    #[error("cannot carry the signing keys: {0}")]
    Keys(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens `source` and `dest`, copies the one into the other ([`Store::copy_into`]) and
/// waits until the destination is durable (sled: flushed and synced; PostgreSQL: every
/// batch committed). A failure after the first write can leave a partial destination:
/// nothing else uses it, so the operator drops it and runs the command again.
///
/// A sled tracker keeps its signing keys in files in `data_dir`: from a sled source they
/// are first written into the source's `signing_keys` tree
/// ([`crate::keysource::store_file_keyrings`]), so the copy carries them.
pub async fn migrate(
    source: &Engine,
    dest: &Engine,
    data_dir: Option<&std::path::Path>,
) -> Result<CopyReport, CopyError> {
    let (src, src_writer) = Store::open_engine(source).map_err(|e| match (source, e) {
        (Engine::Sled { dir, .. }, e) if e.is_locked() => CopyError::Locked(dir.clone()),
        (_, e) => CopyError::OpenSource(e),
    })?;
    let (dst, dst_writer) = Store::open_engine(dest).map_err(|e| match (dest, e) {
        (Engine::Sled { dir, .. }, e) if e.is_locked() => CopyError::Locked(dir.clone()),
        (_, e) => CopyError::OpenDestination(e),
    })?;
    let src_writer = tokio::spawn(src_writer.run());
    if let (Engine::Sled { .. }, Some(dir)) = (source, data_dir) {
        crate::keysource::store_file_keyrings(&src, dir)
            .await
            .map_err(|e| CopyError::Keys(e.to_string()))?;
    }
    let report = tokio::task::spawn_blocking(move || src.copy_into(&dst))
        .await
        .map_err(|e| StoreError::Db(format!("the copy panicked: {e}")))?;
    // The source's writer ends with its last handle (dropped with the copy).
    src_writer
        .await
        .map_err(|e| StoreError::Db(format!("the source's writer panicked: {e}")))??;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::testing::{TestEngine, TestStore};
    use super::{CopyError, COPY_BATCH};

    /// sled → PostgreSQL → sled: more than one batch per tree, every byte kept, and ids
    /// on each destination above every id its source handed out (sled's generator is
    /// advanced across one of its persist intervals).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copies_trees_and_raises_ids_both_ways() {
        let sled = TestStore::open(TestEngine::Sled).await;
        let n = COPY_BATCH + 7;
        sled.store
            .write(move |t| {
                for i in 0..n as u32 {
                    t.progress.insert(i.to_be_bytes(), [i as u8, 0xff])?;
                }
                t.rooms.insert([0], [])?;
                Ok(())
            })
            .await
            .unwrap();
        let sled_id = sled.store.next_id().unwrap();

        let pg = TestStore::open(TestEngine::Postgres).await;
        let (from, to) = (sled.store.clone(), pg.store.clone());
        let report = tokio::task::spawn_blocking(move || from.copy_into(&to))
            .await
            .unwrap()
            .unwrap();
        assert!(report.matches(), "{report:?}");
        assert_eq!(report.totals(), (n + 1, n + 1));
        assert_eq!(sled.store.entries().unwrap(), pg.store.entries().unwrap());
        assert!(pg.store.next_id().unwrap() > sled_id);

        // A source whose ids are past sled's first persist interval.
        pg.store.trees.db.raise_ids_above(1_200_000).unwrap();
        let back = TestStore::open(TestEngine::Sled).await;
        let (from, to) = (pg.store.clone(), back.store.clone());
        let report = tokio::task::spawn_blocking(move || from.copy_into(&to))
            .await
            .unwrap()
            .unwrap();
        assert!(report.matches(), "{report:?}");
        assert_eq!(sled.store.entries().unwrap(), back.store.entries().unwrap());
        assert!(back.store.next_id().unwrap() > 1_200_000);

        // Never into a store that holds records.
        let (from, to) = (pg.store.clone(), back.store.clone());
        let again = tokio::task::spawn_blocking(move || from.copy_into(&to))
            .await
            .unwrap();
        assert!(
            matches!(again, Err(CopyError::NotEmpty { tree: "progress", count }) if count == n),
            "{again:?}"
        );
        back.close().await;
        pg.close().await;
        sled.close().await;
    }
}
