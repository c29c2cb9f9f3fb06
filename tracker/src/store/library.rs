//! A user's own lists in storage: watch later, progress, and the history index.
//!
//! Progress is the one write that is *not* a transaction (see [`Store::put_progress`]):
//! plain inserts in a fixed order inside one writer job, acknowledged after the batch
//! flush like every other write.

use super::{codec, history_key, Progress, Store, StoreError, Trees, UserId, WatchEntry};

/// What adding to a watch-later list did.
#[derive(Debug, Clone)]
pub enum WatchAdd {
    /// It was there already.
    Existing(WatchEntry),
    Added(WatchEntry),
    /// The list holds its maximum already.
    Full,
}

/// One page of history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryRows {
    /// Movie id and its stored progress.
    pub items: Vec<(String, Progress)>,
    /// The key suffix (after the user id) of the last entry read, when another page
    /// follows.
    pub next: Option<Vec<u8>>,
}

fn movie_of_key(key: &[u8], skip: usize) -> String {
    String::from_utf8_lossy(&key[skip..]).into_owned()
}

impl Store {
    /// `uid`'s watch-later list as (movie id, entry), in key order.
    pub fn watchlist(&self, uid: &UserId) -> Result<Vec<(String, WatchEntry)>, StoreError> {
        let mut items = Vec::new();
        for item in self.trees.watchlist.scan_prefix(uid.0) {
            let (key, value) = item?;
            items.push((movie_of_key(&key, 16), codec::decode(&value)?));
        }
        Ok(items)
    }

    /// Adds `movie` to `uid`'s list at `now_ms` unless it is there or the list holds `max`.
    pub async fn watchlist_add(
        &self,
        uid: UserId,
        movie: String,
        now_ms: u64,
        max: usize,
    ) -> Result<WatchAdd, StoreError> {
        let key = uid.key(movie.as_bytes());
        self.write(move |t| {
            if let Some(raw) = t.watchlist.get(&key)? {
                return Ok(WatchAdd::Existing(codec::decode::<WatchEntry>(&raw)?));
            }
            if t.watchlist.count_prefix(uid.0)? >= max {
                return Ok(WatchAdd::Full);
            }
            let entry = WatchEntry {
                added_at_ms: now_ms,
                seq: t.next_id()?,
            };
            t.watchlist.insert(key, codec::encode(&entry)?)?;
            Ok(WatchAdd::Added(entry))
        })
        .await
    }

    /// Removes `movie` from `uid`'s list (nothing when absent).
    pub async fn watchlist_remove(&self, uid: UserId, movie: String) -> Result<(), StoreError> {
        let key = uid.key(movie.as_bytes());
        self.write(move |t| {
            t.watchlist.remove(key)?;
            Ok(())
        })
        .await
    }

    /// `uid`'s progress in `movie`.
    pub fn progress(&self, uid: &UserId, movie: &str) -> Result<Option<Progress>, StoreError> {
        match self.trees.progress.get(uid.key(movie.as_bytes()))? {
            Some(raw) => Ok(Some(codec::decode(&raw)?)),
            None => Ok(None),
        }
    }

    /// Stores progress unless a newer write is already there (answers what is stored and
    /// whether this write was applied); keeps history in step. Progress for a movie `uid`
    /// has none for yet, when `uid` has progress for `max` movies already, first evicts the
    /// entries watched longest ago (progress and history) to make room: saving progress is
    /// never refused for the cap.
    ///
    /// **Not a transaction**, on purpose: see [`write_progress`].
    pub async fn put_progress(
        &self,
        uid: UserId,
        movie: String,
        progress: Progress,
        max: usize,
    ) -> Result<(Progress, bool), StoreError> {
        self.write(move |t| write_progress(t, uid, &movie, progress, max))
            .await
    }

    /// Up to `limit` history entries of `uid`, newest first, starting strictly after the
    /// key suffix `after` (a previous page's [`HistoryRows::next`]).
    pub fn history(
        &self,
        uid: &UserId,
        limit: usize,
        after: Option<&[u8]>,
    ) -> Result<HistoryRows, StoreError> {
        let trees = &self.trees;
        let start = match after {
            Some(suffix) => {
                let mut k = uid.key(suffix);
                k.push(0); // strictly after the last key of the previous page
                k
            }
            None => uid.0.to_vec(),
        };
        let mut items = Vec::new();
        let mut last = None;
        for item in trees.history.range(start..) {
            let (key, _) = item?;
            if !key.starts_with(&uid.0) {
                break;
            }
            if items.len() == limit {
                break;
            }
            let movie = movie_of_key(&key, 32);
            if let Some(raw) = trees.progress.get(uid.key(movie.as_bytes()))? {
                let p: Progress = codec::decode(&raw)?;
                // Only the entry that matches the stored progress counts (see write_progress).
                if history_key(uid, &p, &movie) == key {
                    items.push((movie, p));
                }
            }
            last = Some(key);
        }
        let next = match last {
            Some(k) if items.len() == limit => {
                let more = trees
                    .history
                    .range([k.as_slice(), &[0]].concat()..)
                    .next()
                    .transpose()?
                    .is_some_and(|(next, _)| next.starts_with(&uid.0));
                more.then(|| k[16..].to_vec())
            }
            _ => None,
        };
        Ok(HistoryRows { items, next })
    }
}

/// Stores progress unless a newer write is already there; keeps history in step.
fn write_progress(
    t: &Trees,
    uid: UserId,
    movie: &str,
    mut progress: Progress,
    max: usize,
) -> Result<(Progress, bool), StoreError> {
    let key = uid.key(movie.as_bytes());
    let old: Option<Progress> = match t.progress.get(&key)? {
        Some(raw) => Some(codec::decode(&raw)?),
        None => None,
    };
    if let Some(old) = &old {
        if old.updated_at_ms > progress.updated_at_ms {
            return Ok((old.clone(), false));
        }
    }
    if old.is_none() {
        // Counted in the writer job, which owns every write to `progress`: parallel
        // writes for new movies cannot pass the cap.
        let count = t.progress.count_prefix(uid.0)?;
        if count >= max {
            evict_oldest_progress(t, &uid, count + 1 - max)?;
        }
    }
    progress.seq = t.next_id()?;
    let value = codec::encode(&progress)?;
    let new_hist = history_key(&uid, &progress, movie);
    let old_hist = old.map(|o| history_key(&uid, &o, movie));
    // No multi-tree transaction here: in sled 0.34 each one forces its own log write, which
    // capped durable writes near 5k/s. History is an index that tolerates a crash between
    // these steps instead: sled recovers a prefix of them, a new entry without its progress
    // and an old entry left behind both fail the match in `history()` and are skipped.
    t.history.insert(new_hist, [])?;
    t.progress.insert(key, value)?;
    if let Some(k) = old_hist {
        t.history.delete(k)?;
    }
    Ok((progress, true))
}

/// Removes `uid`'s `n` least recently watched progress entries and their history entries
/// (the oldest are the last history keys of `uid`). Stale history keys met on the way
/// (left by a crash between the steps of [`write_progress`]) are removed too. Should the
/// history index lack entries, the progress tree itself is searched for the oldest.
fn evict_oldest_progress(t: &Trees, uid: &UserId, n: usize) -> Result<(), StoreError> {
    let mut evicted = 0;
    while evicted < n {
        let Some(item) = t.history.scan_prefix(uid.0).next_back() else {
            break;
        };
        let (hkey, _) = item?;
        let movie = movie_of_key(&hkey, 32);
        let pkey = uid.key(movie.as_bytes());
        if let Some(raw) = t.progress.get(&pkey)? {
            let p: Progress = codec::decode(&raw)?;
            if history_key(uid, &p, &movie) == hkey {
                tracing::debug!(user = %uid, movie = %movie, "progress cap: evicting the oldest entry");
                t.progress.remove(&pkey)?;
                evicted += 1;
            }
        }
        t.history.remove(hkey)?;
    }
    while evicted < n {
        let mut oldest: Option<(u64, u64, Vec<u8>)> = None;
        for item in t.progress.scan_prefix(uid.0) {
            let (k, v) = item?;
            let p: Progress = codec::decode(&v)?;
            if oldest
                .as_ref()
                .is_none_or(|(at, seq, _)| (p.updated_at_ms, p.seq) < (*at, *seq))
            {
                oldest = Some((p.updated_at_ms, p.seq, k));
            }
        }
        let Some((_, _, k)) = oldest else {
            break;
        };
        tracing::warn!(user = %uid, "progress cap: evicting an entry missing from the history index");
        t.progress.remove(k)?;
        evicted += 1;
    }
    Ok(())
}
