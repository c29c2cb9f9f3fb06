//! The sled engine (the embedded default): the seam's types over `sled` 0.34, with the
//! database laid out exactly as before the seam (one sled tree per record kind, the same
//! names, keys and values), so an existing tracker's database opens unchanged.
//!
//! Durability (a flush per batch, then optionally `fdatasync` of the log) stays with the
//! store's writer ([`super::super::Writer`]).

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional as _, TransactionalTree,
    UnabortableTransactionError,
};

use crate::store::StoreError;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// An open sled database.
#[derive(Clone)]
pub struct SledDb {
    db: sled::Db,
}

impl SledDb {
    /// Opens (or creates) the database in `dir` (high-throughput mode, as always).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Ok(Self { db })
    }

    pub(super) fn open_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    pub(super) fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Draws ids until the next one is above `floor`: sled's generator cannot be set, only
    /// advanced (an atomic counter; it persists once per million ids). Refuses a gap so
    /// large that advancing would take minutes.
    pub(super) fn raise_ids_above(&self, floor: u64) -> Result<(), StoreError> {
        const MOST: u64 = 1 << 32;
        let first = self.db.generate_id()?;
        if floor.saturating_sub(first) > MOST {
            return Err(StoreError::Db(format!(
                "cannot advance sled's id generator from {first} to {floor}"
            )));
        }
        let mut id = first;
        while id < floor {
            id = self.db.generate_id()?;
        }
        Ok(())
    }

    /// sled's flush: every write so far is in the log on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

/// A tree inside a sled transaction.
#[derive(Clone)]
pub struct SledTxTree {
    tree: TransactionalTree,
    /// Set when sled reported a conflict, so the transaction is retried, not aborted.
    conflict: Rc<Cell<bool>>,
}

impl SledTxTree {
    fn err(&self, e: UnabortableTransactionError) -> StoreError {
        match e {
            UnabortableTransactionError::Conflict => {
                self.conflict.set(true);
                StoreError::Db("transaction conflict".to_owned())
            }
            UnabortableTransactionError::Storage(e) => e.into(),
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.err(e))
    }

    pub(super) fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree
            .insert(key, value)
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub(super) fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree
            .remove(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.err(e))
    }
}

/// One sled transaction over `trees`: `f`'s error aborts it; a conflict retries it.
pub(super) fn transaction<R>(
    trees: &[&sled::Tree],
    f: impl Fn(&[SledTxTree]) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let conflict = Rc::new(Cell::new(false));
    let result = trees.transaction(|views: &Vec<TransactionalTree>| {
        conflict.set(false);
        let views: Vec<SledTxTree> = views
            .iter()
            .map(|tree| SledTxTree {
                tree: tree.clone(),
                conflict: conflict.clone(),
            })
            .collect();
        match f(&views) {
            Ok(r) => Ok(r),
            Err(_) if conflict.get() => Err(ConflictableTransactionError::Conflict),
            Err(e) => Err(ConflictableTransactionError::Abort(e)),
        }
    });
    match result {
        Ok(r) => Ok(r),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}
