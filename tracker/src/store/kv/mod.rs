//! The key-value seam under the store's typed operations: ordered trees of byte keys and
//! byte values, with the subset of sled's API the store uses, over two engines.
//!
//! - [`sled`] (the embedded default): a thin wrapper over `sled::Tree`; the on-disk format
//!   is exactly what the store wrote before this seam existed.
//! - [`postgres`]: one table `kv (tree, k, v)` in PostgreSQL (see that module for the
//!   table, the batching and the locking).
//!
//! The semantics the store relies on, and both engines keep:
//! - keys compare bytewise (sled's order; PostgreSQL's `bytea` order), so a prefix scan is
//!   one user's records and `rev()` walks newest first where keys are inverted times;
//! - every write happens inside a writer job (`Store::write`; the one exception is
//!   [`Tree::insert_new`], a single atomic insert-if-absent), and there is one writer per
//!   process: a [`Transactional::transaction`] never conflicts with another writer of this
//!   process. Across processes (several trackers on one PostgreSQL) the PostgreSQL engine
//!   serialises whole batches with an advisory lock, so the same holds;
//! - inside a job, reads see the job's own writes (sled: the tree itself; PostgreSQL: the
//!   batch's open transaction); outside a job, reads see committed data;
//! - a transaction's closure aborts with a [`StoreError`]: nothing it wrote stays.
//!
//! Values are the store's versioned [`super::codec`] bytes; this layer never looks inside.

pub mod postgres;
pub mod sled;

use super::StoreError;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An open database of either engine: hands out [`Tree`]s and ids.
#[derive(Clone)]
pub enum Db {
    Sled(self::sled::SledDb),
    Postgres(postgres::PgDb),
}

impl Db {
    /// The tree `name` (created on first use).
    pub fn open_tree(&self, name: &'static str) -> Result<Tree, StoreError> {
        Ok(match self {
            Db::Sled(db) => Tree::Sled(db.open_tree(name)?),
            Db::Postgres(db) => Tree::Postgres(db.tree(name)),
        })
    }

    /// A number larger than any this database handed out before, across restarts.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        match self {
            Db::Sled(db) => db.generate_id(),
            Db::Postgres(db) => db.generate_id(),
        }
    }

    /// Makes every id this database hands out from now on larger than `floor` (for a
    /// copy: the destination's ids stay above every id the source handed out).
    pub fn raise_ids_above(&self, floor: u64) -> Result<(), StoreError> {
        match self {
            Db::Sled(db) => db.raise_ids_above(floor),
            Db::Postgres(db) => db.raise_ids_above(floor),
        }
    }

    /// The same database as the writer sees it: for PostgreSQL, trees whose reads and
    /// writes go to the writer's open batch transaction; for sled, the same trees.
    pub fn for_writer(&self) -> Db {
        match self {
            Db::Sled(db) => Db::Sled(db.clone()),
            Db::Postgres(db) => Db::Postgres(db.for_writer()),
        }
    }
}

/// One ordered tree of byte keys and values.
#[derive(Clone)]
pub enum Tree {
    Sled(::sled::Tree),
    Postgres(postgres::PgTree),
}

impl Tree {
    /// The value under `key`.
    pub fn get<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.get(key)?.map(|v| v.to_vec())),
            Tree::Postgres(t) => t.get(key.as_ref()),
        }
    }

    /// Whether `key` has a value.
    pub fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> Result<bool, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.contains_key(key)?),
            Tree::Postgres(t) => t.contains_key(key.as_ref()),
        }
    }

    /// Sets `key` to `value`.
    pub fn insert<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        key: K,
        value: V,
    ) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => {
                t.insert(key.as_ref(), value.as_ref())?;
                Ok(())
            }
            Tree::Postgres(t) => t.insert(key.as_ref(), value.as_ref()),
        }
    }

    /// Sets `key` to `value` unless it already has a value; `true` when it was set. The
    /// one write allowed outside the writer: a single atomic step on both engines (sled's
    /// compare-and-swap; one PostgreSQL statement, committed when it returns), so two
    /// processes inserting the same key at once see exactly one `true`. Not group
    /// committed: sled makes it durable at its next flush.
    pub fn insert_new<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        key: K,
        value: V,
    ) -> Result<bool, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t
                .compare_and_swap(key.as_ref(), None as Option<&[u8]>, Some(value.as_ref()))?
                .is_ok()),
            Tree::Postgres(t) => t.insert_new(key.as_ref(), value.as_ref()),
        }
    }

    /// Removes `key`; answers the value it had.
    pub fn remove<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.remove(key)?.map(|v| v.to_vec())),
            Tree::Postgres(t) => t.remove(key.as_ref()),
        }
    }

    /// Removes `key` when its old value is not needed: on PostgreSQL's writer it goes
    /// out with the job's next statement instead of a round trip of its own.
    pub fn delete<K: AsRef<[u8]>>(&self, key: K) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => t.remove(key).map(|_| ()).map_err(StoreError::from),
            Tree::Postgres(t) => t.delete(key.as_ref()),
        }
    }

    /// Every entry whose key starts with `prefix`, in key order (both ends).
    pub fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> Iter {
        match self {
            Tree::Sled(t) => Iter::Sled(t.scan_prefix(prefix)),
            Tree::Postgres(t) => {
                Iter::Postgres(t.scan(prefix.as_ref().to_vec(), prefix_end(prefix.as_ref())))
            }
        }
    }

    /// How many keys start with `prefix` (a count, not a walk, where the engine can).
    pub fn count_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> Result<usize, StoreError> {
        match self {
            Tree::Sled(t) => {
                let mut n = 0;
                for item in t.scan_prefix(prefix) {
                    item?;
                    n += 1;
                }
                Ok(n)
            }
            Tree::Postgres(t) => t.count(prefix.as_ref(), prefix_end(prefix.as_ref())),
        }
    }

    /// Every entry with a key at or after `range.start`, in key order.
    pub fn range<K: AsRef<[u8]>>(&self, range: std::ops::RangeFrom<K>) -> Iter {
        match self {
            Tree::Sled(t) => Iter::Sled(t.range(range.start.as_ref()..)),
            Tree::Postgres(t) => Iter::Postgres(t.scan(range.start.as_ref().to_vec(), None)),
        }
    }

    /// Every entry, in key order (both ends).
    pub fn iter(&self) -> Iter {
        match self {
            Tree::Sled(t) => Iter::Sled(t.iter()),
            Tree::Postgres(t) => Iter::Postgres(t.scan(Vec::new(), None)),
        }
    }

    /// Writes `entries` (keys not present yet) as one batch, outside the store's writer:
    /// for a bulk copy into a database no tracker uses. sled: one atomic batch (durable at
    /// the next flush); PostgreSQL: one statement, committed when it returns.
    pub fn insert_batch(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        match self {
            Tree::Sled(t) => {
                let mut batch = ::sled::Batch::default();
                for (k, v) in entries {
                    batch.insert(k, v);
                }
                Ok(t.apply_batch(batch)?)
            }
            Tree::Postgres(t) => t.insert_many(entries),
        }
    }

    /// Whether the tree holds no entry.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.iter().next().transpose()?.is_none())
    }

    /// How many entries the tree holds.
    pub fn len(&self) -> Result<usize, StoreError> {
        match self {
            Tree::Sled(t) => Ok(t.len()),
            Tree::Postgres(t) => t.count(&[], None),
        }
    }
}

/// The first key after every key that starts with `prefix` (`None`: no such key, the
/// prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// An ordered walk over part of a tree; reads pages lazily (PostgreSQL) from either end.
pub enum Iter {
    Sled(::sled::Iter),
    Postgres(postgres::PgIter),
}

impl Iterator for Iter {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Sled(it) => it.next().map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            }),
            Iter::Postgres(it) => it.next(),
        }
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Sled(it) => it.next_back().map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(StoreError::from)
            }),
            Iter::Postgres(it) => it.next_back(),
        }
    }
}

impl Iter {
    /// The keys only.
    pub fn keys(self) -> impl DoubleEndedIterator<Item = Result<Vec<u8>, StoreError>> {
        self.map(|r| r.map(|(k, _)| k))
    }

    /// The values only.
    pub fn values(self) -> impl DoubleEndedIterator<Item = Result<Vec<u8>, StoreError>> {
        self.map(|r| r.map(|(_, v)| v))
    }
}

/// A tree as a transaction sees it: reads see the transaction's own writes.
#[derive(Clone)]
pub enum TxTree {
    Sled(self::sled::SledTxTree),
    Postgres(postgres::PgTree),
}

impl TxTree {
    /// The value under `key`.
    pub fn get<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            TxTree::Sled(t) => t.get(key.as_ref()),
            TxTree::Postgres(t) => t.get(key.as_ref()),
        }
    }

    /// Sets `key` to `value`.
    pub fn insert<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        key: K,
        value: V,
    ) -> Result<(), StoreError> {
        match self {
            TxTree::Sled(t) => t.insert(key.as_ref(), value.as_ref()),
            TxTree::Postgres(t) => t.insert(key.as_ref(), value.as_ref()),
        }
    }

    /// Removes `key`; answers the value it had.
    pub fn remove<K: AsRef<[u8]>>(&self, key: K) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            TxTree::Sled(t) => t.remove(key.as_ref()),
            TxTree::Postgres(t) => t.remove(key.as_ref()),
        }
    }
}

/// Runs `f` over `trees` as one atomic change (all its writes or none). `f` may run more
/// than once (sled retries on a conflict, which a single writer never meets).
fn run_transaction<R>(
    trees: &[&Tree],
    f: impl Fn(&[TxTree]) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let mut sled_trees = Vec::with_capacity(trees.len());
    let mut pg_trees = Vec::with_capacity(trees.len());
    for t in trees {
        match t {
            Tree::Sled(t) => sled_trees.push(t),
            Tree::Postgres(t) => pg_trees.push(t.clone()),
        }
    }
    match (sled_trees.is_empty(), pg_trees.is_empty()) {
        (false, true) => self::sled::transaction(&sled_trees, |views| {
            let views: Vec<TxTree> = views.iter().cloned().map(TxTree::Sled).collect();
            f(&views)
        }),
        (true, false) => postgres::transaction(&pg_trees, || {
            let views: Vec<TxTree> = pg_trees.iter().cloned().map(TxTree::Postgres).collect();
            f(&views)
        }),
        _ => Err(StoreError::Db(
            "a transaction spans trees of one database only".to_owned(),
        )),
    }
}

/// Trees that can change together in one transaction: a tree or a tuple of 2 to 6.
pub trait Transactional {
    /// What the closure gets: a [`TxTree`] per tree, in the same shape.
    type View;

    /// Runs `f` as one atomic change; an `Err` from `f` aborts it (nothing written) and is
    /// returned.
    fn transaction<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: Fn(&Self::View) -> Result<R, StoreError>;
}

impl Transactional for Tree {
    type View = TxTree;

    fn transaction<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: Fn(&TxTree) -> Result<R, StoreError>,
    {
        run_transaction(&[self], |v| f(&v[0]))
    }
}

macro_rules! transactional_tuple {
    ($($t:ident $i:tt),+) => {
        impl Transactional for ($(&$t,)+) {
            type View = ($(transactional_tuple!(@tx $t),)+);

            fn transaction<R, F>(&self, f: F) -> Result<R, StoreError>
            where
                F: Fn(&Self::View) -> Result<R, StoreError>,
            {
                run_transaction(&[$(self.$i),+], |v| f(&($(v[$i].clone(),)+)))
            }
        }
    };
    (@tx $t:ident) => { TxTree };
}

transactional_tuple!(Tree 0, Tree 1);
transactional_tuple!(Tree 0, Tree 1, Tree 2);
transactional_tuple!(Tree 0, Tree 1, Tree 2, Tree 3);
transactional_tuple!(Tree 0, Tree 1, Tree 2, Tree 3, Tree 4);
transactional_tuple!(Tree 0, Tree 1, Tree 2, Tree 3, Tree 4, Tree 5);

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }
}
