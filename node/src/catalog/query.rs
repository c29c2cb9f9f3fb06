//! What the index answers: which live nodes hold a segment (a record's claim on a version,
//! newest version first), and movies with their manifests summarized for the gateway.

use super::*;

impl State {
    /// Does `node`'s record claim segment `index` (None: the init segment) of `track` through
    /// its entry for version `vid`?
    pub(super) fn claims(
        &self,
        entry: &RecordEntry,
        vid: &ManifestId,
        track: u16,
        index: Option<u32>,
    ) -> bool {
        let Some(held) = entry.record.find(vid) else {
            return false;
        };
        match index {
            None => held.complete || held.ranges.iter().any(|r| r.track == track),
            Some(index) => {
                if held.complete {
                    // A complete older version holds the segments it had.
                    match self.versions.get(vid) {
                        Some(v) => v
                            .segments
                            .get(usize::from(track))
                            .is_some_and(|&n| index < n),
                        None => true,
                    }
                } else {
                    held.has_segment(track, index)
                }
            }
        }
    }

    pub(super) fn providers(
        &self,
        id: &ManifestId,
        track: u16,
        index: Option<u32>,
        now: u64,
    ) -> Vec<Provider> {
        let mut nodes: BTreeMap<NodeId, Provider> = BTreeMap::new();
        for vid in self.same_ingest(id) {
            let Some(holders) = self.held_by.get(&vid) else {
                continue;
            };
            for node in holders {
                let Some(entry) = self.records.get(node) else {
                    continue;
                };
                if entry.record.expires_at <= now || nodes.contains_key(node) {
                    continue;
                }
                if self.claims(entry, &vid, track, index) {
                    nodes.insert(
                        *node,
                        Provider {
                            node: *node,
                            quic_addr: entry.quic_addr,
                            gateway_url: entry.record.gateway_url.clone(),
                        },
                    );
                }
            }
        }
        nodes.into_values().collect()
    }

    pub(super) fn summarize(
        &self,
        id: &ManifestId,
        entry: &ManifestEntry,
        now: u64,
    ) -> ManifestSummary {
        let m = &entry.manifest;
        let mut holders = BTreeSet::new();
        let mut complete_holders = BTreeSet::new();
        // Per track, which media segments some live node holds.
        let mut covered: Vec<Vec<bool>> = m
            .tracks
            .iter()
            .map(|t| vec![false; t.segments.len()])
            .collect();
        for vid in self.same_ingest(id) {
            let Some(nodes) = self.held_by.get(&vid) else {
                continue;
            };
            let version_len = self.versions.get(&vid).map(|v| &v.segments);
            for node in nodes {
                let Some(rec) = self.records.get(node) else {
                    continue;
                };
                if rec.record.expires_at <= now {
                    continue;
                }
                let Some(held) = rec.record.find(&vid) else {
                    continue;
                };
                holders.insert(*node);
                if held.complete {
                    if vid == *id || version_len.is_none() {
                        complete_holders.insert(*node);
                    }
                    for (t, cov) in covered.iter_mut().enumerate() {
                        let n = version_len
                            .and_then(|v| v.get(t))
                            .map_or(cov.len(), |&n| (n as usize).min(cov.len()));
                        cov[..n].iter_mut().for_each(|c| *c = true);
                    }
                } else {
                    for r in &held.ranges {
                        if let Some(cov) = covered.get_mut(usize::from(r.track)) {
                            let end = (r.end as usize).min(cov.len());
                            let start = (r.start as usize).min(end);
                            cov[start..end].iter_mut().for_each(|c| *c = true);
                        }
                    }
                }
            }
        }
        let total: usize = covered.iter().map(Vec::len).sum();
        let have: usize = covered.iter().flatten().filter(|c| **c).count();
        let available_percent = if total == 0 {
            0.0
        } else {
            (have as f64 * 100.0 / total as f64) as f32
        };
        ManifestSummary {
            id: *id,
            origin: m.origin,
            seq: m.seq,
            complete: m.complete,
            duration_ms: m.duration_ms(),
            renditions: m
                .tracks
                .iter()
                .filter(|t| t.is_video())
                .map(|t| t.rendition.name.clone())
                .collect(),
            holders: holders.len(),
            complete_holders: complete_holders.len(),
            available_percent,
            bound: self.lineage(&m.movie, &m.origin, &m.ingest_id) == authority::Lineage::Bound,
        }
    }

    /// Every movie, sorted by title. Built from the whole index; see [`State::listing`]
    /// for the cached form requests get.
    pub(super) fn movies(&self, now: u64) -> Vec<MovieSummary> {
        let mut by_movie: BTreeMap<&MovieId, Vec<(&ManifestId, &ManifestEntry)>> = BTreeMap::new();
        for (id, entry) in &self.manifests {
            by_movie
                .entry(&entry.manifest.movie)
                .or_default()
                .push((id, entry));
        }
        let mut out: Vec<MovieSummary> = by_movie
            .into_iter()
            .filter_map(|(movie, list)| self.summary_of(movie, list, now))
            .collect();
        out.sort_by(|a, b| {
            a.title
                .to_lowercase()
                .cmp(&b.title.to_lowercase())
                .then_with(|| a.movie_id.cmp(&b.movie_id))
        });
        out
    }

    /// One movie: work bounded by its own ingests (a range of the ordered index).
    pub(super) fn movie(&self, movie: &MovieId, now: u64) -> Option<MovieSummary> {
        let from = (movie.clone(), NodeId([0; 32]), [0; 16]);
        let to = (movie.clone(), NodeId([0xff; 32]), [0xff; 16]);
        let list: Vec<(&ManifestId, &ManifestEntry)> = self
            .latest
            .range(from..=to)
            .filter_map(|(_, id)| self.manifests.get_key_value(id))
            .collect();
        self.summary_of(movie, list, now)
    }

    /// The full listing, rebuilt only when something changed. When a rebuild is costly
    /// (a large catalog), a listing up to [`STALE_LISTING`] old is served meanwhile, so a
    /// stream of requests during a stream of changes does not rebuild it every time.
    pub(super) fn listing(&mut self, now: u64) -> Arc<Vec<MovieSummary>> {
        if let Some((generation, built, took, list)) = &self.listing {
            let fresh = *generation == self.generation;
            let tolerable = *took > COSTLY_LISTING && built.elapsed() < STALE_LISTING;
            if fresh || tolerable {
                return list.clone();
            }
        }
        let started = Instant::now();
        let list = Arc::new(self.movies(now));
        self.listing = Some((self.generation, started, started.elapsed(), list.clone()));
        list
    }

    fn summary_of(
        &self,
        movie: &MovieId,
        mut list: Vec<(&ManifestId, &ManifestEntry)>,
        now: u64,
    ) -> Option<MovieSummary> {
        // A bound movie lists its bound source; a re-pointed one whose new source has not
        // arrived yet keeps showing the previous one.
        if self.bindings.get(movie).is_some() {
            let bound: Vec<_> = list
                .iter()
                .filter(|(_, e)| {
                    let m = &e.manifest;
                    self.lineage(&m.movie, &m.origin, &m.ingest_id) == authority::Lineage::Bound
                })
                .copied()
                .collect();
            if !bound.is_empty() {
                list = bound;
            }
        }
        list.sort_by_key(|(_, e)| std::cmp::Reverse(e.manifest.created_at));
        let newest = list.first()?.1.manifest.clone();
        let mut nodes = BTreeSet::new();
        let manifests = list
            .iter()
            .map(|(id, e)| {
                for vid in self.same_ingest(id) {
                    for n in self.held_by.get(&vid).into_iter().flatten() {
                        if self
                            .records
                            .get(n)
                            .is_some_and(|r| r.record.expires_at > now)
                        {
                            nodes.insert(*n);
                        }
                    }
                }
                self.summarize(id, e, now)
            })
            .collect();
        Some(MovieSummary {
            movie_id: movie.clone(),
            title: newest.title.clone(),
            year: newest.year,
            manifests,
            holders: nodes.len(),
        })
    }
}

/// A listing rebuild slower than this is costly (see [`State::listing`]).
const COSTLY_LISTING: Duration = Duration::from_millis(2);
/// How old a costly listing may be served while changes come in.
const STALE_LISTING: Duration = Duration::from_secs(1);
