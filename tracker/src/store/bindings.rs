//! Movie bindings in storage (issue 15): which source lineage is canonical for a movie id,
//! the network-wide binding version, the version → movie index nodes page through, and the
//! ingests nodes announced (so an admin can bind a movie to one of them).
//!
//! Trees: `bindings` (movie id → [`BindingRecord`]), `binding_versions` (version u64 BE →
//! movie id; a re-point removes the old version's entry), `ingests` (manifest id →
//! [`IngestRecord`]), `origin_ingests` (origin ++ order u64 BE ++ manifest id → (), to drop
//! a node's oldest announcements first) and `movie_ingests` (movie id ++ 0 ++ manifest id →
//! ()). The version counter lives in the `network` tree. Every change is one writer job;
//! what it writes is one transaction.

use super::kv::{Transactional, TxTree};
use serde::{Deserialize, Serialize};

use super::{codec, dec_tx, enc_tx, MovieRequest, Store, StoreError, Trees};

const BINDING_VERSION: &[u8] = b"binding_version";

/// How a binding was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindHow {
    /// The ingest fulfilled a request for the movie.
    Request,
    /// The first complete ingest announced for an unbound movie.
    FirstIngest,
    /// An operator or admin bound (or re-pointed) it.
    Admin,
}

/// A movie's binding: the lineage (origin + ingest id) that is canonical for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRecord {
    pub movie: String,
    /// The origin node's id (raw).
    pub origin: [u8; 32],
    pub ingest_id: [u8; 16],
    /// The manifest (a complete version of the lineage) it was bound for.
    pub manifest: [u8; 32],
    /// Network-wide binding version; grows with every bind or re-point.
    pub version: u64,
    /// Unix seconds.
    pub bound_at: u64,
    pub how: BindHow,
    /// Who: the request id, the announcing node's id, or the operator / admin's email.
    pub by: String,
}

/// A complete ingest a node announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestRecord {
    pub manifest: [u8; 32],
    pub movie: String,
    pub origin: [u8; 32],
    pub ingest_id: [u8; 16],
    pub seq: u64,
    pub title: String,
    pub year: Option<u16>,
    pub complete: bool,
    /// Unix seconds.
    pub announced_at: u64,
    /// Store-wide order of announcement (oldest dropped first).
    pub order: u64,
}

/// What an announcement did.
#[derive(Debug, Clone)]
pub struct Announced {
    /// The movie's binding after the announcement, if it is bound.
    pub binding: Option<BindingRecord>,
    /// The announcement made the binding.
    pub bound_now: bool,
    /// A request for the movie held by another node kept it from binding.
    pub deferred: bool,
}

/// What a bind asks for.
#[derive(Debug, Clone)]
pub struct BindSpec {
    pub movie: String,
    pub manifest: [u8; 32],
    pub how: BindHow,
    pub by: String,
    /// Only when the movie is unbound (else an existing binding is re-pointed).
    pub only_if_unbound: bool,
    /// The announcement must come from this origin.
    pub origin: Option<[u8; 32]>,
    pub now: u64,
}

/// The answer to a [`BindSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// Bound or re-pointed.
    Bound(BindingRecord),
    /// Left as it was (already bound to this manifest, or bound and `only_if_unbound`).
    Unchanged(BindingRecord),
    /// No such announced manifest (or not from the required origin).
    UnknownManifest,
    /// The manifest is of another movie (named).
    OtherMovie(String),
    /// The announced manifest is not complete.
    Incomplete,
}

fn movie_ingest_key(movie: &str, manifest: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(movie.len() + 33);
    k.extend_from_slice(movie.as_bytes());
    k.push(0);
    k.extend_from_slice(manifest);
    k
}

fn origin_key(origin: &[u8; 32], order: u64, manifest: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(72);
    k.extend_from_slice(origin);
    k.extend_from_slice(&order.to_be_bytes());
    k.extend_from_slice(manifest);
    k
}

type TxResult<T> = Result<T, StoreError>;

/// Writes `b` as `movie`'s binding with the next version; removes the old version's index
/// entry. Inside a transaction over (bindings, binding_versions, network).
fn put_binding(
    bindings: &TxTree,
    versions: &TxTree,
    network: &TxTree,
    mut b: BindingRecord,
) -> TxResult<BindingRecord> {
    let current = match network.get(BINDING_VERSION)? {
        Some(v) => dec_tx::<u64>(&v)?,
        None => 0,
    };
    b.version = current + 1;
    if let Some(old) = bindings.get(b.movie.as_bytes())? {
        let old: BindingRecord = dec_tx(&old)?;
        versions.remove(old.version.to_be_bytes())?;
    }
    network.insert(BINDING_VERSION, enc_tx(&b.version)?)?;
    versions.insert(b.version.to_be_bytes(), b.movie.as_bytes())?;
    bindings.insert(b.movie.as_bytes(), enc_tx(&b)?)?;
    Ok(b)
}

impl Trees {
    fn binding_of(&self, movie: &str) -> Result<Option<BindingRecord>, StoreError> {
        match self.bindings.get(movie.as_bytes())? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The open request for `tmdb_id`, if any (read in the writer, so it is current).
    fn open_request(&self, tmdb_id: u64) -> Result<Option<MovieRequest>, StoreError> {
        let Some(id) = self.open_requests.get(tmdb_id.to_be_bytes())? else {
            return Ok(None);
        };
        match self.requests.get(id)? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }
}

impl Store {
    /// Movie `movie`'s binding.
    pub fn binding(&self, movie: &str) -> Result<Option<BindingRecord>, StoreError> {
        self.trees.binding_of(movie)
    }

    /// Every binding, by movie id.
    pub fn bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        self.trees
            .bindings
            .iter()
            .map(|item| {
                let (_, v) = item?;
                codec::decode(&v)
            })
            .collect()
    }

    /// How many movies are bound.
    pub fn bound_movies(&self) -> u64 {
        match self.trees.bindings.len() {
            Ok(n) => n as u64,
            Err(err) => {
                tracing::warn!(%err, "cannot count bindings");
                0
            }
        }
    }

    /// The highest binding version (0: none ever).
    pub fn binding_version(&self) -> Result<u64, StoreError> {
        match self.trees.network.get(BINDING_VERSION)? {
            Some(v) => codec::decode(&v),
            None => Ok(0),
        }
    }

    /// The bindings with a version above `after`, lowest first, at most `limit`; and
    /// whether more follow.
    pub fn bindings_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<BindingRecord>, bool), StoreError> {
        let mut out = Vec::new();
        let Some(start) = after.checked_add(1) else {
            return Ok((out, false));
        };
        for item in self.trees.binding_versions.range(start.to_be_bytes()..) {
            let (k, movie) = item?;
            if out.len() == limit {
                return Ok((out, true));
            }
            let movie = String::from_utf8_lossy(&movie).into_owned();
            match self.trees.binding_of(&movie)? {
                // The index and the binding are written in one transaction; a mismatch
                // would be a bug, and is skipped rather than served.
                Some(b) if k.as_slice() == b.version.to_be_bytes() => out.push(b),
                _ => {}
            }
        }
        Ok((out, false))
    }

    /// An announced ingest by manifest id.
    pub fn ingest(&self, manifest: &[u8; 32]) -> Result<Option<IngestRecord>, StoreError> {
        match self.trees.ingests.get(manifest)? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The ingests announced for `movie`, oldest first.
    pub fn ingests_of(&self, movie: &str) -> Result<Vec<IngestRecord>, StoreError> {
        let mut prefix = movie.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.trees.movie_ingests.scan_prefix(&prefix) {
            let (k, _) = item?;
            let Some(m) = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            if let Some(rec) = self.ingest(&m)? {
                out.push(rec);
            }
        }
        out.sort_by_key(|r| r.order);
        Ok(out)
    }

    /// Every movie with an announced ingest, each once, in id order.
    pub fn announced_movies(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        for item in self.trees.movie_ingests.iter() {
            let (k, _) = item?;
            let Some(end) = k.iter().position(|b| *b == 0) else {
                continue;
            };
            let movie = String::from_utf8_lossy(&k[..end]).into_owned();
            if out.last() != Some(&movie) {
                out.push(movie);
            }
        }
        Ok(out)
    }

    /// Records an announced ingest `rec` (a node keeps at most `max_per_origin`; its
    /// oldest announcements that are not a movie's bound manifest go first) and binds its
    /// movie to its lineage when the movie is unbound and `blocked` says no to the open
    /// request for `tmdb_id` (if any). `how_of` names how the binding is made given that
    /// request. One writer job: the request is read as the writer sees it.
    pub async fn announce_ingest<B, H>(
        &self,
        rec: IngestRecord,
        tmdb_id: Option<u64>,
        max_per_origin: usize,
        blocked: B,
        how_of: H,
    ) -> Result<Announced, StoreError>
    where
        B: Fn(&MovieRequest) -> bool + Send + 'static,
        H: Fn(Option<&MovieRequest>) -> (BindHow, String) + Send + 'static,
    {
        self.write(move |t| {
            let mut rec = rec;
            let request = match tmdb_id {
                Some(id) => t.open_request(id)?,
                None => None,
            };
            let deferred = request.as_ref().is_some_and(&blocked);
            let (how, by) = how_of(request.as_ref());
            let known = t.ingests.get(rec.manifest)?.is_some();
            // Oldest unbound announcements of this origin beyond the bound, dropped with it.
            let mut evict: Vec<IngestRecord> = Vec::new();
            if !known {
                rec.order = t.next_id()?;
                let mine: Vec<Vec<u8>> = t
                    .origin_ingests
                    .scan_prefix(rec.origin)
                    .keys()
                    .collect::<Result<_, _>>()?;
                let mut excess = (mine.len() + 1).saturating_sub(max_per_origin);
                for k in mine {
                    if excess == 0 {
                        break;
                    }
                    let Some(m) = k.get(40..72).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
                        continue;
                    };
                    let Some(old) = t.ingests.get(m)? else {
                        continue;
                    };
                    let old: IngestRecord = codec::decode(&old)?;
                    let bound = t.binding_of(&old.movie)?.is_some_and(|b| b.manifest == m);
                    if !bound {
                        evict.push(old);
                        excess -= 1;
                    }
                }
            }
            let trees = (
                &t.ingests,
                &t.origin_ingests,
                &t.movie_ingests,
                &t.bindings,
                &t.binding_versions,
                &t.network,
            );
            let r = trees.transaction(|(ingests, origins, movies, bindings, versions, network)| {
                if !known {
                    for old in &evict {
                        ingests.remove(&old.manifest[..])?;
                        origins.remove(origin_key(&old.origin, old.order, &old.manifest))?;
                        movies.remove(movie_ingest_key(&old.movie, &old.manifest))?;
                    }
                    ingests.insert(&rec.manifest[..], enc_tx(&rec)?)?;
                    origins.insert(origin_key(&rec.origin, rec.order, &rec.manifest), [])?;
                    movies.insert(movie_ingest_key(&rec.movie, &rec.manifest), [])?;
                }
                let current: Option<BindingRecord> = match bindings.get(rec.movie.as_bytes())? {
                    Some(v) => Some(dec_tx(&v)?),
                    None => None,
                };
                if current.is_some() || deferred || !rec.complete {
                    let deferred = deferred && current.is_none();
                    return Ok(Announced {
                        binding: current,
                        bound_now: false,
                        deferred,
                    });
                }
                let b = put_binding(
                    bindings,
                    versions,
                    network,
                    BindingRecord {
                        movie: rec.movie.clone(),
                        origin: rec.origin,
                        ingest_id: rec.ingest_id,
                        manifest: rec.manifest,
                        version: 0,
                        bound_at: rec.announced_at,
                        how,
                        by: by.clone(),
                    },
                )?;
                Ok(Announced {
                    binding: Some(b),
                    bound_now: true,
                    deferred: false,
                })
            });
            r
        })
        .await
    }

    /// Binds `spec.movie` to the lineage of the announced manifest `spec.manifest`.
    pub async fn bind_movie(&self, spec: BindSpec) -> Result<BindOutcome, StoreError> {
        self.write(move |t| {
            let r = (&t.ingests, &t.bindings, &t.binding_versions, &t.network).transaction(
                |(ingests, bindings, versions, network)| {
                    let Some(v) = ingests.get(&spec.manifest[..])? else {
                        return Ok(BindOutcome::UnknownManifest);
                    };
                    let rec: IngestRecord = dec_tx(&v)?;
                    if spec.origin.is_some_and(|o| o != rec.origin) {
                        return Ok(BindOutcome::UnknownManifest);
                    }
                    if rec.movie != spec.movie {
                        return Ok(BindOutcome::OtherMovie(rec.movie));
                    }
                    if !rec.complete {
                        return Ok(BindOutcome::Incomplete);
                    }
                    if let Some(v) = bindings.get(spec.movie.as_bytes())? {
                        let current: BindingRecord = dec_tx(&v)?;
                        if spec.only_if_unbound || current.manifest == rec.manifest {
                            return Ok(BindOutcome::Unchanged(current));
                        }
                    }
                    let b = put_binding(
                        bindings,
                        versions,
                        network,
                        BindingRecord {
                            movie: rec.movie.clone(),
                            origin: rec.origin,
                            ingest_id: rec.ingest_id,
                            manifest: rec.manifest,
                            version: 0,
                            bound_at: spec.now,
                            how: spec.how,
                            by: spec.by.clone(),
                        },
                    )?;
                    Ok(BindOutcome::Bound(b))
                },
            );
            r
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ingest(origin: u8, movie: &str, n: u8) -> IngestRecord {
        IngestRecord {
            manifest: [n; 32],
            movie: movie.to_owned(),
            origin: [origin; 32],
            ingest_id: [n; 16],
            seq: 1,
            title: movie.to_owned(),
            year: None,
            complete: true,
            announced_at: u64::from(n),
            order: 0,
        }
    }

    async fn announce(store: &Store, rec: IngestRecord, max: usize) -> Announced {
        store
            .announce_ingest(
                rec,
                None,
                max,
                |_| false,
                |_| (BindHow::FirstIngest, "n".into()),
            )
            .await
            .unwrap()
    }

    async fn a_nodes_oldest_unbound_announcements_go_first_and_repoints_leave_one_version(
        store: Store,
    ) {
        // 1 binds movie a; 2 and 3 are other ingests of a (unbound); max 2 per origin.
        assert!(announce(&store, ingest(7, "a", 1), 2).await.bound_now);
        assert!(!announce(&store, ingest(7, "a", 2), 2).await.bound_now);
        announce(&store, ingest(7, "a", 3), 2).await;
        // The bound one stays; the oldest unbound one (2) was dropped.
        let kept: Vec<u8> = store
            .ingests_of("a")
            .unwrap()
            .iter()
            .map(|r| r.manifest[0])
            .collect();
        assert_eq!(kept, vec![1, 3]);
        // Another origin's announcements do not count against this one.
        announce(&store, ingest(8, "b", 4), 2).await;
        assert_eq!(store.ingests_of("a").unwrap().len(), 2);

        // Re-pointing a takes the next version and removes the old one from paging.
        let out = store
            .bind_movie(BindSpec {
                movie: "a".into(),
                manifest: [3; 32],
                how: BindHow::Admin,
                by: "operator".into(),
                only_if_unbound: false,
                origin: None,
                now: 9,
            })
            .await
            .unwrap();
        assert!(
            matches!(&out, BindOutcome::Bound(b) if b.version == 3),
            "{out:?}"
        );
        let (page, more) = store.bindings_after(0, 10).unwrap();
        let versions: Vec<(String, u64)> =
            page.iter().map(|b| (b.movie.clone(), b.version)).collect();
        assert_eq!(versions, vec![("b".into(), 2), ("a".into(), 3)]);
        assert!(!more);
        let (page, more) = store.bindings_after(0, 1).unwrap();
        assert_eq!((page.len(), more), (1, true));
        assert_eq!(store.binding_version().unwrap(), 3);
        // The dropped manifest is unknown; a request's bind never re-points.
        let spec = |m: u8, only: bool| BindSpec {
            movie: "a".into(),
            manifest: [m; 32],
            how: BindHow::Request,
            by: "1".into(),
            only_if_unbound: only,
            origin: None,
            now: 10,
        };
        assert_eq!(
            store.bind_movie(spec(2, false)).await.unwrap(),
            BindOutcome::UnknownManifest
        );
        assert!(matches!(
            store.bind_movie(spec(1, true)).await.unwrap(),
            BindOutcome::Unchanged(b) if b.manifest == [3; 32]
        ));
        assert_eq!(
            store.bind_movie(spec(4, false)).await.unwrap(),
            BindOutcome::OtherMovie("b".into())
        );
    }
    crate::store::testing::engine_tests!(
        a_nodes_oldest_unbound_announcements_go_first_and_repoints_leave_one_version,
        super::a_nodes_oldest_unbound_announcements_go_first_and_repoints_leave_one_version
    );
}
