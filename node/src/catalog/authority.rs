//! Which manifests may stand for a movie, and how much of the catalog one origin may take.
//!
//! # Movie authority
//!
//! A movie the network has bound (see [`crate::bindings`]) is served only from its bound
//! lineage: manifests of that origin and ingest id. Any other manifest that claims the id
//! is refused ([`Verdict::OtherLineage`], counted, logged once per lineage). When a binding
//! moves to another lineage (an admin re-points the movie), the previous lineage is
//! *retired*: its manifests stay in the index for [`CatalogConfig::retired_grace`] so a
//! viewer in the middle of it keeps playing (their playback token names the manifest), but
//! it is no longer listed; then it is forgotten. Unbound movies keep every member's
//! manifests, as before.
//!
//! # Budget
//!
//! Every manifest and record is charged to its origin (about the memory it takes: twice
//! its encoded size plus a fixed overhead). One origin may keep at most
//! [`CatalogConfig::max_manifests_per_origin`] manifests and
//! [`CatalogConfig::max_bytes_per_origin`] bytes, and the whole catalog at most
//! [`CatalogConfig::budget_bytes`]. Over its own limit, an origin loses its own manifests:
//! those of other than bound lineages first (unbound before retired), oldest first, the
//! bound ones last. Over the whole budget, the origin with the most that is not a bound
//! source pays first the same way (so a hundred flooding members cannot push out the
//! movies the network bound); bound sources go only when nothing else is left. An origin
//! with no manifest left to give loses its record.

use super::*;

/// What a manifest's lineage is for its movie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lineage {
    /// The movie is not bound.
    Unbound,
    /// The bound lineage.
    Bound,
    /// A previously bound lineage, in its grace period.
    Retired,
    /// Another lineage of a bound movie.
    Other,
}

/// Most retired lineages remembered per movie.
const MAX_RETIRED_PER_MOVIE: usize = 4;
/// Most lineages remembered as already logged.
const MAX_LOGGED: usize = 4096;
/// Fixed memory overhead charged per manifest or record.
const ENTRY_OVERHEAD: usize = 512;

/// What a manifest or record of `encoded` bytes is charged.
pub(super) fn charge(encoded: usize) -> usize {
    encoded.saturating_mul(2).saturating_add(ENTRY_OVERHEAD)
}

/// An origin's share of the catalog.
#[derive(Debug, Default)]
pub(super) struct Usage {
    /// Its manifests (newest version per ingest), by acceptance order.
    pub(super) manifests: BTreeMap<u64, ManifestId>,
    pub(super) manifest_bytes: usize,
    pub(super) record_bytes: usize,
    /// Of `manifest_bytes`, what bound lineages take.
    pub(super) protected_bytes: usize,
}

impl Usage {
    fn bytes(&self) -> usize {
        self.manifest_bytes + self.record_bytes
    }

    /// What may go before any bound manifest does.
    fn unprotected(&self) -> usize {
        self.bytes().saturating_sub(self.protected_bytes)
    }
}

impl State {
    /// The lineage status of a manifest of `movie` from `origin`/`ingest_id`.
    pub(super) fn lineage(
        &self,
        movie: &MovieId,
        origin: &NodeId,
        ingest_id: &[u8; 16],
    ) -> Lineage {
        let Some(binding) = self.bindings.get(movie) else {
            return Lineage::Unbound;
        };
        if binding.covers(origin, ingest_id) {
            return Lineage::Bound;
        }
        let now = Instant::now();
        let retired = self.retired.get(movie).is_some_and(|list| {
            list.iter()
                .any(|(o, i, until)| o == origin && i == ingest_id && *until > now)
        });
        if retired {
            Lineage::Retired
        } else {
            Lineage::Other
        }
    }

    /// Counts and logs (once per lineage) a manifest refused for another lineage.
    pub(super) fn other_lineage(&mut self, manifest: &Manifest) -> Verdict {
        let key = (manifest.movie.clone(), manifest.origin, manifest.ingest_id);
        if self.logged.len() < MAX_LOGGED && self.logged.insert(key) {
            tracing::warn!(
                movie = %manifest.movie,
                origin = %manifest.origin.short(),
                title = %manifest.title,
                "ignoring a manifest for a bound movie from another source (not its bound lineage)"
            );
        }
        Verdict::OtherLineage(format!("{} is bound to another source", manifest.movie))
    }

    /// Takes a new binding table: retires lineages that lost their binding and drops
    /// manifests that no longer may stand for their movie.
    pub(super) fn apply_bindings(&mut self, table: Arc<BindingTable>) {
        if Arc::ptr_eq(&table, &self.bindings) {
            return;
        }
        let old = std::mem::replace(&mut self.bindings, table);
        let until = Instant::now() + self.config.retired_grace;
        let mut retire = Vec::new();
        for b in self.bindings.iter() {
            match old.get(&b.movie) {
                Some(prev) if prev.version == b.version => {}
                Some(prev) if !b.covers(&prev.origin, &prev.ingest_id) => {
                    retire.push((b.movie.clone(), prev.origin, prev.ingest_id));
                }
                _ => {}
            }
        }
        self.generation += 1;
        for (movie, origin, ingest) in retire {
            tracing::info!(%movie, origin = %origin.short(), "movie re-pointed; the previous source stays playable for a while");
            let list = self.retired.entry(movie).or_default();
            list.retain(|(o, i, _)| !(*o == origin && *i == ingest));
            list.push((origin, ingest, until));
            if list.len() > MAX_RETIRED_PER_MOVIE {
                list.remove(0);
            }
        }
        self.drop_other_lineages();
        self.reprotect();
        self.adopt_rebound();
    }

    /// Takes in the manifests refused earlier for another lineage that the bindings now
    /// allow (a re-point's new source that arrived before the binding did).
    fn adopt_rebound(&mut self) {
        let (now_ok, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.rebind_wait)
            .into_iter()
            .partition(|(_, _, m)| {
                self.lineage(&m.movie, &m.origin, &m.ingest_id) != Lineage::Other
            });
        self.rebind_wait = rest.into();
        for (id, signed, manifest) in now_ok {
            self.rebind_wait_bytes = self
                .rebind_wait_bytes
                .saturating_sub(signed.manifest_bytes().len());
            let v = self.insert_manifest(id, signed, manifest);
            self.count(&v);
            if v == Verdict::Accepted {
                self.enforce_budget();
            }
        }
    }

    /// Marks the bound lineages' manifests protected (and no others) after a binding
    /// change. One pass over the index.
    fn reprotect(&mut self) {
        let changes: Vec<(ManifestId, bool)> = self
            .manifests
            .iter()
            .filter_map(|(id, e)| {
                let m = &e.manifest;
                let now = self.lineage(&m.movie, &m.origin, &m.ingest_id) == Lineage::Bound;
                (now != e.protected).then_some((*id, now))
            })
            .collect();
        for (id, protected) in changes {
            let Some(entry) = self.manifests.get_mut(&id) else {
                continue;
            };
            entry.protected = protected;
            let (origin, charge) = (entry.manifest.origin, entry.charge);
            if let Some(usage) = self.usage.get_mut(&origin) {
                if protected {
                    usage.protected_bytes += charge;
                } else {
                    usage.protected_bytes = usage.protected_bytes.saturating_sub(charge);
                }
            }
        }
    }

    /// Forgets every manifest whose lineage is [`Lineage::Other`] (after a binding change
    /// or the end of a grace period). One pass over the index.
    pub(super) fn drop_other_lineages(&mut self) {
        let gone: Vec<(IngestKey, ManifestId)> = self
            .latest
            .iter()
            .filter(|((movie, origin, ingest), _)| {
                self.lineage(movie, origin, ingest) == Lineage::Other
            })
            .map(|(k, id)| (k.clone(), *id))
            .collect();
        for (ingest, id) in gone {
            tracing::info!(manifest = %id, movie = %ingest.0, "dropped a manifest of a movie bound to another source");
            self.stats.other_lineage += 1;
            self.forget_ingest(&ingest);
        }
    }

    /// Ends the grace of retired lineages whose time is up.
    pub(super) fn expire_retired(&mut self) {
        let now = Instant::now();
        let before: usize = self.retired.values().map(Vec::len).sum();
        for list in self.retired.values_mut() {
            list.retain(|(_, _, until)| *until > now);
        }
        self.retired.retain(|_, list| !list.is_empty());
        let after: usize = self.retired.values().map(Vec::len).sum();
        if after != before {
            self.drop_other_lineages();
        }
    }

    /// Forgets an ingest: its newest manifest and every version remembered.
    pub(super) fn forget_ingest(&mut self, ingest: &IngestKey) {
        if let Some(id) = self.latest.remove(ingest) {
            if let Some(entry) = self.manifests.remove(&id) {
                self.uncharge_manifest(id, &entry);
            }
            self.emit(CatalogEvent::ManifestForgotten { id });
        }
        for vid in self.ingest_versions.remove(ingest).into_iter().flatten() {
            self.versions.remove(&vid);
        }
    }

    /// Charges a newly accepted manifest to its origin.
    pub(super) fn charge_manifest(&mut self, id: ManifestId, entry: &ManifestEntry) {
        let meta = &entry.manifest.meta;
        for hash in [meta.poster, meta.backdrop].into_iter().flatten() {
            self.images.entry(hash).or_default().insert(id);
        }
        let usage = self.usage.entry(entry.manifest.origin).or_default();
        usage.manifests.insert(entry.order, id);
        usage.manifest_bytes += entry.charge;
        if entry.protected {
            usage.protected_bytes += entry.charge;
        }
        self.total_bytes += entry.charge;
    }

    pub(super) fn uncharge_manifest(&mut self, id: ManifestId, entry: &ManifestEntry) {
        let meta = &entry.manifest.meta;
        for hash in [meta.poster, meta.backdrop].into_iter().flatten() {
            if let Some(set) = self.images.get_mut(&hash) {
                set.remove(&id);
                if set.is_empty() {
                    self.images.remove(&hash);
                }
            }
        }
        let origin = entry.manifest.origin;
        if let Some(usage) = self.usage.get_mut(&origin) {
            usage.manifests.remove(&entry.order);
            usage.manifest_bytes = usage.manifest_bytes.saturating_sub(entry.charge);
            if entry.protected {
                usage.protected_bytes = usage.protected_bytes.saturating_sub(entry.charge);
            }
            if usage.bytes() == 0 && usage.manifests.is_empty() {
                self.usage.remove(&origin);
            }
        }
        self.total_bytes = self.total_bytes.saturating_sub(entry.charge);
    }

    /// Charges (or re-charges) a node's record.
    pub(super) fn charge_record(&mut self, node: NodeId, bytes: usize) {
        let usage = self.usage.entry(node).or_default();
        self.total_bytes = self.total_bytes.saturating_sub(usage.record_bytes) + bytes;
        usage.record_bytes = bytes;
        if usage.bytes() == 0 && usage.manifests.is_empty() {
            self.usage.remove(&node);
        }
    }

    /// Evicts until every limit holds (see the module docs).
    pub(super) fn enforce_budget(&mut self) {
        let cfg = &self.config;
        let (per_count, per_bytes, total) = (
            cfg.max_manifests_per_origin,
            cfg.max_bytes_per_origin,
            cfg.budget_bytes,
        );
        loop {
            let over_own = self
                .usage
                .iter()
                .filter(|(_, u)| u.manifests.len() > per_count || u.bytes() > per_bytes)
                .max_by_key(|(_, u)| u.bytes())
                .map(|(n, _)| *n);
            // Over the whole budget: the origin with the most that is not a bound source
            // pays first, so a flood of members cannot push out the movies the network
            // bound; only when nothing else is left do bound sources go, largest first.
            let origin = match over_own {
                Some(n) => n,
                None if self.total_bytes > total => {
                    let unprotected = self
                        .usage
                        .iter()
                        .filter(|(_, u)| u.unprotected() > 0)
                        .max_by_key(|(_, u)| u.unprotected());
                    match unprotected.or_else(|| self.usage.iter().max_by_key(|(_, u)| u.bytes())) {
                        Some((n, _)) => *n,
                        None => return,
                    }
                }
                None => return,
            };
            if !self.evict_one(origin) {
                // Nothing of it left to evict: stop rather than spin.
                return;
            }
        }
    }

    /// Evicts one manifest of `origin` (other lineages first, oldest first), or its record
    /// when it has no manifest. False if nothing could be evicted.
    fn evict_one(&mut self, origin: NodeId) -> bool {
        let Some(usage) = self.usage.get(&origin) else {
            return false;
        };
        let mut pick: Option<(u8, ManifestId)> = None;
        for id in usage.manifests.values() {
            let Some(entry) = self.manifests.get(id) else {
                continue;
            };
            let m = &entry.manifest;
            let rank = match self.lineage(&m.movie, &m.origin, &m.ingest_id) {
                Lineage::Other | Lineage::Unbound => 0,
                Lineage::Retired => 1,
                Lineage::Bound => 2,
            };
            if pick.is_none_or(|(r, _)| rank < r) {
                pick = Some((rank, *id));
                if rank == 0 {
                    break;
                }
            }
        }
        if let Some((_, id)) = pick {
            let Some(entry) = self.manifests.get(&id) else {
                return false;
            };
            let m = entry.manifest.clone();
            let ingest: IngestKey = (m.movie.clone(), m.origin, m.ingest_id);
            tracing::warn!(
                origin = %origin.short(),
                movie = %m.movie,
                "catalog over budget: evicting a manifest of the origin using the most"
            );
            self.stats.evicted += 1;
            self.forget_ingest(&ingest);
            return true;
        }
        if usage.record_bytes > 0 {
            if let Some(old) = self.records.remove(&origin) {
                self.unindex(&old.record);
                tracing::warn!(node = %origin.short(), "catalog over budget: dropped the record of the node using the most");
                self.stats.evicted += 1;
                self.emit(CatalogEvent::RecordExpired { node: origin });
            }
            self.charge_record(origin, 0);
            return true;
        }
        false
    }
}
