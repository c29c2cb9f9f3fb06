//! Movie requests in storage: the requests, the one-open-request-per-TMDb-id index, each
//! user's asks (newest first) and in-app notifications.

use super::kv::{Transactional, Tree};

use super::{codec, dec_tx, enc_tx, MovieRequest, Notification, Store, StoreError, UserId};

fn req_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// A user's request quota: at most `limit` asks at or after `since_ms`.
#[derive(Debug, Clone, Copy)]
pub struct AskQuota {
    pub limit: u32,
    pub since_ms: u64,
}

/// What [`Store::ask_for_movie`] did.
#[derive(Debug, Clone)]
pub enum AskOutcome {
    /// The request as stored and whether it was created (false: joined, or already asked).
    Asked(Box<MovieRequest>, bool),
    /// The user has made `used` asks in the quota window, no fewer than the limit; nothing
    /// was written.
    QuotaExceeded { used: u32 },
}

/// How many asks `uid` made at or after `since_ms` (`user_requests` keys are newest first).
fn asked_since(tree: &Tree, uid: &UserId, since_ms: u64) -> Result<u32, StoreError> {
    let mut n = 0;
    for item in tree.scan_prefix(uid.0) {
        let (k, _) = item?;
        let Some(inv) = k.get(16..24).and_then(|b| b.try_into().ok()) else {
            continue;
        };
        let at = u64::MAX - u64::from_be_bytes(inv);
        if at < since_ms {
            break; // newest first
        }
        n += 1;
    }
    Ok(n)
}

impl Store {
    /// Request `id`.
    pub fn request(&self, id: u64) -> Result<Option<MovieRequest>, StoreError> {
        match self.trees.requests.get(req_key(id))? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Every request, newest first.
    pub fn requests_newest_first(&self) -> Result<Vec<MovieRequest>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees.requests.iter().rev() {
            let (_, v) = item?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }

    /// How many requests `uid` asked for at or after `since_ms`.
    pub fn requests_asked_since(&self, uid: &UserId, since_ms: u64) -> Result<u32, StoreError> {
        asked_since(&self.trees.user_requests, uid, since_ms)
    }

    /// The ids of the requests `uid` asked for, newest first.
    pub fn user_request_ids(&self, uid: &UserId) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees.user_requests.scan_prefix(uid.0) {
            let (k, _) = item?;
            if let Some(id) = k.get(24..32).and_then(|b| b.try_into().ok()) {
                out.push(u64::from_be_bytes(id));
            }
        }
        Ok(out)
    }

    /// `uid` asks for TMDb movie `tmdb_id` at `now_ms`: joins the open (unfinished)
    /// request for it, or starts `new`. `join` adds the asker to the request and answers
    /// whether anything changed (false: nothing is written); then the request, the open
    /// index and `uid`'s ask are written in one transaction. Answers the request and
    /// whether it was created.
    ///
    /// `quota` is checked and counted in the same writer job: the asks `uid` made since
    /// `quota.since_ms` are counted there, and a new ask when they reach `quota.limit` is
    /// refused with [`AskOutcome::QuotaExceeded`] (nothing written). Every write goes through
    /// the one writer, so no other ask can land between the count and the write: parallel
    /// requests cannot pass the quota. Asking again for a request `uid` already joined
    /// writes nothing and is not refused.
    pub async fn ask_for_movie<F>(
        &self,
        uid: UserId,
        tmdb_id: u64,
        now_ms: u64,
        quota: AskQuota,
        new: MovieRequest,
        join: F,
    ) -> Result<AskOutcome, StoreError>
    where
        F: Fn(&mut MovieRequest) -> bool + Send + 'static,
    {
        self.write(move |t| {
            // Read outside the transaction (transactions cannot scan) but inside the
            // writer job, which owns every write to `user_requests`.
            let used = asked_since(&t.user_requests, &uid, quota.since_ms)?;
            (&t.requests, &t.open_requests, &t.user_requests).transaction(
                |(requests, open, mine)| {
                    let existing = match open.get(tmdb_id.to_be_bytes())? {
                        Some(id) => match requests.get(&id)? {
                            Some(v) => {
                                let r: MovieRequest = dec_tx(&v)?;
                                (!r.state.finished()).then_some(r)
                            }
                            None => None,
                        },
                        None => None,
                    };
                    let (mut r, created) = match existing {
                        Some(r) => (r, false),
                        None => (new.clone(), true),
                    };
                    if !join(&mut r) {
                        return Ok(AskOutcome::Asked(Box::new(r), false));
                    }
                    if used >= quota.limit {
                        return Ok(AskOutcome::QuotaExceeded { used });
                    }
                    requests.insert(req_key(r.id), enc_tx(&r)?)?;
                    open.insert(r.tmdb_id.to_be_bytes(), req_key(r.id))?;
                    let mut k = Vec::with_capacity(16);
                    k.extend_from_slice(&(u64::MAX - now_ms).to_be_bytes());
                    k.extend_from_slice(&req_key(r.id));
                    mine.insert(uid.key(&k), [])?;
                    Ok(AskOutcome::Asked(Box::new(r), created))
                },
            )
        })
        .await
    }

    /// Applies `f` to request `id` and keeps the open index in step, in one transaction.
    /// `None` when there is no such request; `Some(Err)` when `f` refused (nothing written).
    pub async fn update_request<F, E>(
        &self,
        id: u64,
        f: F,
    ) -> Result<Option<Result<MovieRequest, E>>, StoreError>
    where
        F: Fn(&mut MovieRequest) -> Result<(), E> + Send + 'static,
        E: Send + 'static,
    {
        self.write(move |t| {
            let r = (&t.requests, &t.open_requests).transaction(|(requests, open)| {
                let Some(v) = requests.get(req_key(id))? else {
                    return Ok(None);
                };
                let mut r: MovieRequest = dec_tx(&v)?;
                if let Err(e) = f(&mut r) {
                    return Ok(Some(Err(e)));
                }
                requests.insert(req_key(id), enc_tx(&r)?)?;
                let key = r.tmdb_id.to_be_bytes();
                if r.state.finished() {
                    if open.get(key)?.as_deref() == Some(&req_key(id)[..]) {
                        open.remove(key)?;
                    }
                } else {
                    open.insert(key, req_key(id))?;
                }
                Ok(Some(Ok(r)))
            });
            r
        })
        .await
    }

    /// Walks the requests oldest first in write order; the first one `claim` changes (it
    /// answers true) is stored and returned.
    pub async fn claim_first<F>(&self, mut claim: F) -> Result<Option<MovieRequest>, StoreError>
    where
        F: FnMut(&mut MovieRequest) -> bool + Send + 'static,
    {
        self.write(move |t| {
            for item in t.requests.iter() {
                let (k, v) = item?;
                let mut r: MovieRequest = codec::decode(&v)?;
                if !claim(&mut r) {
                    continue;
                }
                t.requests.insert(k, codec::encode(&r)?)?;
                return Ok(Some(r));
            }
            Ok(None)
        })
        .await
    }

    /// Stores an in-app notification for `uid`.
    pub async fn add_notification(&self, uid: UserId, n: Notification) -> Result<(), StoreError> {
        let key = uid.key(&(u64::MAX - n.id).to_be_bytes());
        let bytes = codec::encode(&n)?;
        self.write(move |t| {
            t.notifications.insert(key, bytes)?;
            Ok(())
        })
        .await
    }

    /// `uid`'s notifications, newest first, at most `limit`.
    pub fn notifications(
        &self,
        uid: &UserId,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees.notifications.scan_prefix(uid.0).take(limit) {
            let (_, v) = item?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }
}
