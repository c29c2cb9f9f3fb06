//! Movie bindings as this node knows them: movie id → the canonical source lineage (origin
//! node + ingest id), signed by the network key (see `reelnet_proto::binding`).
//!
//! The membership task owns the table: it fetches new bindings from the tracker with every
//! refresh (`GET /api/v1/network/bindings?after=N`), takes newer ones that arrive over
//! gossip, and publishes the table with the rest of its state. The catalog reads it to
//! decide which manifests may stand for a movie; the swarm gossips the bindings that are
//! new since the last refresh ([`BindingTable::fresh_after`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use reelnet_proto::binding::{Binding, SignedBinding};
use reelnet_proto::membership::Trust;
use reelnet_proto::MovieId;

/// Most bindings kept (the tracker is trusted, this only bounds a tracker gone wrong).
pub const MAX_BINDINGS: usize = 1_000_000;
/// Most fresh bindings remembered for gossip.
const MAX_FRESH: usize = 256;

/// What [`BindingTable::offer`] made of a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingVerdict {
    /// Newer than what was known for its movie: taken.
    Accepted,
    /// The same version as known.
    Duplicate,
    /// An older version than known: ignored.
    Stale,
    /// Does not verify (unknown key, other network, bad signature, malformed) or the table
    /// is full.
    Invalid(String),
}

/// Counters, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingStats {
    pub accepted: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub invalid: u64,
}

/// [`BindingStats`] as the membership task counts them (shared with its handle, so
/// counting a refused binding never touches the table).
#[derive(Debug, Default)]
pub struct BindingCounters {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    stale: AtomicU64,
    invalid: AtomicU64,
}

impl BindingCounters {
    pub fn count(&self, verdict: &BindingVerdict) {
        let c = match verdict {
            BindingVerdict::Accepted => &self.accepted,
            BindingVerdict::Duplicate => &self.duplicate,
            BindingVerdict::Stale => &self.stale,
            BindingVerdict::Invalid(_) => &self.invalid,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BindingStats {
        BindingStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
        }
    }
}

/// The bindings known. Cloned on write (it changes rarely, and is read everywhere); a
/// binding is judged against the table as it is ([`BindingTable::judge`]) so a refused or
/// replayed one costs no copy.
#[derive(Debug, Clone, Default)]
pub struct BindingTable {
    by_movie: HashMap<MovieId, (Binding, SignedBinding)>,
    /// The highest version fetched from the tracker: the next fetch asks for what is after.
    pub fetched: u64,
    fresh: VecDeque<(u64, SignedBinding)>,
    fresh_seq: u64,
    /// How many bindings this table has taken (grows with each).
    pub accepted: u64,
}

impl BindingTable {
    /// The binding of `movie`, if it is bound.
    pub fn get(&self, movie: &MovieId) -> Option<&Binding> {
        self.by_movie.get(movie).map(|(b, _)| b)
    }

    /// How many movies are bound.
    pub fn len(&self) -> usize {
        self.by_movie.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_movie.is_empty()
    }

    /// Every binding.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.by_movie.values().map(|(b, _)| b)
    }

    /// Verifies `signed` against `trust` and compares it with the binding known for its
    /// movie: the binding if it is newer (to [`BindingTable::take`]), else why not.
    pub fn judge(
        &self,
        trust: &Trust,
        signed: &SignedBinding,
        now: u64,
    ) -> Result<Binding, BindingVerdict> {
        let b = trust
            .verify_binding(signed, now)
            .map_err(|err| BindingVerdict::Invalid(err.to_string()))?;
        match self.by_movie.get(&b.movie) {
            Some((known, _)) if known.version == b.version => Err(BindingVerdict::Duplicate),
            Some((known, _)) if known.version > b.version => Err(BindingVerdict::Stale),
            None if self.by_movie.len() >= MAX_BINDINGS => Err(BindingVerdict::Invalid(format!(
                "more than {MAX_BINDINGS} bindings"
            ))),
            _ => Ok(b),
        }
    }

    /// Takes a binding [`BindingTable::judge`] passed. `fresh`: pass it on over gossip.
    pub fn take(&mut self, b: Binding, signed: SignedBinding, fresh: bool) {
        if fresh {
            self.fresh_seq += 1;
            self.fresh.push_back((self.fresh_seq, signed.clone()));
            while self.fresh.len() > MAX_FRESH {
                self.fresh.pop_front();
            }
        }
        tracing::info!(
            movie = %b.movie,
            origin = %b.origin.short(),
            version = b.version,
            "movie binding"
        );
        self.accepted += 1;
        self.by_movie.insert(b.movie.clone(), (b, signed));
    }

    /// Fresh bindings (taken since the first fetch) with a gossip sequence above `seq`, and
    /// the highest sequence.
    pub fn fresh_after(&self, seq: u64) -> (Vec<&SignedBinding>, u64) {
        let list = self
            .fresh
            .iter()
            .filter(|(s, _)| *s > seq)
            .map(|(_, b)| b)
            .collect();
        (list, self.fresh_seq)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;
    use reelnet_proto::membership::NetworkKey;
    use reelnet_proto::{ManifestId, NodeId};

    fn trust(key: &SigningKey) -> Trust {
        Trust {
            network_id: "net".into(),
            keys: vec![NetworkKey {
                kid: "k1".into(),
                public: key.verifying_key(),
                not_after: None,
            }],
            ..Trust::default()
        }
    }

    fn binding(version: u64, ingest: u8) -> Binding {
        Binding {
            network_id: "net".into(),
            movie: MovieId::from_tmdb(7),
            origin: NodeId([3; 32]),
            ingest_id: [ingest; 16],
            manifest: ManifestId::of_signed_bytes(&[ingest]),
            version,
            issued_at: 100,
            kid: "k1".into(),
        }
    }

    #[test]
    fn newer_versions_replace_older_ones_and_forgeries_are_counted() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let t = trust(&key);
        let mut table = BindingTable::default();
        let counters = BindingCounters::default();
        let offer = |table: &mut BindingTable, signed: SignedBinding, fresh: bool| {
            let verdict = match table.judge(&t, &signed, 100) {
                Ok(b) => {
                    table.take(b, signed, fresh);
                    BindingVerdict::Accepted
                }
                Err(v) => v,
            };
            counters.count(&verdict);
            verdict
        };
        let sign = |b: &Binding| SignedBinding::sign(b, &key).unwrap();
        assert_eq!(
            offer(&mut table, sign(&binding(2, 1)), false),
            BindingVerdict::Accepted
        );
        assert_eq!(
            offer(&mut table, sign(&binding(2, 1)), true),
            BindingVerdict::Duplicate
        );
        assert_eq!(
            offer(&mut table, sign(&binding(1, 9)), true),
            BindingVerdict::Stale
        );
        assert_eq!(
            table.get(&MovieId::from_tmdb(7)).unwrap().ingest_id,
            [1; 16]
        );
        assert!(table.fresh_after(0).0.is_empty());
        assert_eq!(
            offer(&mut table, sign(&binding(5, 2)), true),
            BindingVerdict::Accepted
        );
        assert_eq!(
            table.get(&MovieId::from_tmdb(7)).unwrap().ingest_id,
            [2; 16]
        );
        let (fresh, seq) = table.fresh_after(0);
        assert_eq!((fresh.len(), seq), (1, 1));
        assert!(table.fresh_after(seq).0.is_empty());
        let forged =
            SignedBinding::sign(&binding(9, 3), &SigningKey::from_bytes(&[2; 32])).unwrap();
        assert!(matches!(
            offer(&mut table, forged, true),
            BindingVerdict::Invalid(_)
        ));
        assert_eq!(table.get(&MovieId::from_tmdb(7)).unwrap().version, 5);
        assert_eq!(
            counters.snapshot(),
            BindingStats {
                accepted: 2,
                duplicate: 1,
                stale: 1,
                invalid: 1
            }
        );
    }
}
