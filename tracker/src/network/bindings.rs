//! One canonical source per movie (issue 15): the tracker binds each movie id to one
//! source lineage (origin node + ingest id) and signs that binding with the network key.
//!
//! - `ingest` members announce complete ingests they originated
//!   ([`Membership::announce`], `POST nodes/ingests`). The tracker records the announcement
//!   and binds the movie to it if the movie is unbound and no other node holds a request for
//!   the movie's TMDb id (that node's ingest binds it when it reports the request done:
//!   [`Membership::bind_for_request`]).
//! - Nodes page through the bindings by version ([`Membership::bindings_page`], public
//!   `GET network/bindings?after=N`). Bindings are signed with the current network key when
//!   served, so a rotation never leaves nodes with bindings signed by a retired key.
//! - Operators and admins list them and bind or re-point a movie to an announced ingest
//!   ([`Membership::movies`], [`Membership::bind`]; `reelnet-tracker movie list|bind`).

use reelnet_proto::binding::{
    AnnouncementResult, Binding, BindingsPage, IngestAnnouncement, MAX_BINDINGS_PER_PAGE,
};
use reelnet_proto::membership::Certificate;
use reelnet_proto::{ManifestId, MovieId, NodeId, SignedManifest, MAX_SIGNED_MANIFEST_BYTES};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::{Membership, Operator};
use crate::clock::{now_ms, now_secs};
use crate::error::ApiError;
use crate::store::{BindHow, BindOutcome, BindSpec, BindingRecord, IngestRecord};

/// Most announcements kept per origin node; its oldest unbound ones are dropped first.
pub const MAX_ANNOUNCEMENTS_PER_NODE: usize = 10_000;
/// Body limit of `POST nodes/ingests`: the hex of the largest signed manifest, and JSON.
pub const MAX_ANNOUNCEMENT_BODY_BYTES: u64 = 2 * MAX_SIGNED_MANIFEST_BYTES as u64 + 1024;

/// `POST admin/movies/{movie_id}/bind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The id (hex) of an announced complete manifest of the movie.
    pub manifest: String,
}

/// An announced ingest as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestView {
    pub manifest: String,
    pub origin: String,
    pub ingest_id: String,
    pub seq: u64,
    pub title: String,
    pub year: Option<u16>,
    pub complete: bool,
    pub announced_at: u64,
}

impl IngestView {
    fn of(r: &IngestRecord) -> Self {
        Self {
            manifest: ManifestId(r.manifest).to_string(),
            origin: NodeId(r.origin).to_string(),
            ingest_id: hex::encode(r.ingest_id),
            seq: r.seq,
            title: r.title.clone(),
            year: r.year,
            complete: r.complete,
            announced_at: r.announced_at,
        }
    }
}

/// A bound movie as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MovieView {
    pub movie: String,
    pub origin: String,
    pub ingest_id: String,
    pub manifest: String,
    pub version: u64,
    pub bound_at: u64,
    pub how: BindHow,
    pub by: String,
    /// The ingests announced for the movie, oldest first.
    pub ingests: Vec<IngestView>,
}

/// A movie with announced ingests and no binding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnboundMovieView {
    pub movie: String,
    pub ingests: Vec<IngestView>,
}

/// `GET admin/movies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoviesView {
    pub network_id: String,
    /// The highest binding version.
    pub version: u64,
    /// Every bound movie, by id.
    pub movies: Vec<MovieView>,
    /// Movies with announcements and no binding, by id.
    pub unbound: Vec<UnboundMovieView>,
}

/// What an announcement came to (the `outcome` label of
/// `reelnet_tracker_ingest_announcements_total`).
#[derive(Debug, Clone, Copy)]
pub enum AnnouncementOutcome {
    /// The announcement bound the movie.
    Bound,
    /// The movie was bound to this lineage already.
    AlreadyBoundHere,
    /// The movie is bound to another lineage.
    BoundElsewhere,
    /// Another node holds a request for the movie; its ingest will bind it.
    Deferred,
    /// Refused (not a valid complete manifest of the caller's).
    Refused,
}

impl AnnouncementOutcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Bound => "bound",
            Self::AlreadyBoundHere => "already_bound_here",
            Self::BoundElsewhere => "bound_elsewhere",
            Self::Deferred => "deferred",
            Self::Refused => "refused",
        }
    }
}

fn bad_manifest(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_manifest", message)
}

fn parse_manifest_id(s: &str) -> Result<ManifestId, ApiError> {
    s.parse()
        .map_err(|_| bad_manifest("manifest id: 64 lowercase hex characters"))
}

fn tmdb_of(movie: &MovieId) -> Option<u64> {
    movie.as_str().strip_prefix("tmdb-")?.parse().ok()
}

fn view(b: &BindingRecord, ingests: Vec<IngestView>) -> MovieView {
    MovieView {
        movie: b.movie.clone(),
        origin: NodeId(b.origin).to_string(),
        ingest_id: hex::encode(b.ingest_id),
        manifest: ManifestId(b.manifest).to_string(),
        version: b.version,
        bound_at: b.bound_at,
        how: b.how,
        by: b.by.clone(),
        ingests,
    }
}

/// Most signed bindings cached (about 0.6 KiB each); the cache starts over when full.
const MAX_SIGNED_CACHE: usize = 100_000;

impl Membership {
    /// `b` signed with the current network key, as hex (from the cache when this key
    /// already signed this version).
    fn signed_binding(&self, b: &BindingRecord) -> Result<String, ApiError> {
        let keyring = self.keyring();
        let kid = keyring.current_kid().to_owned();
        let cached = self
            .signed_bindings
            .lock()
            .ok()
            .and_then(|m| m.get(&b.version).cloned());
        if let Some((k, hex)) = cached {
            if k == kid {
                return Ok(hex);
            }
        }
        let binding = Binding {
            network_id: String::new(),
            movie: MovieId::new(b.movie.clone()).map_err(ApiError::internal)?,
            origin: NodeId(b.origin),
            ingest_id: b.ingest_id,
            manifest: ManifestId(b.manifest),
            version: b.version,
            issued_at: b.bound_at,
            kid: String::new(),
        };
        let hex = keyring
            .sign_binding(binding)
            .map_err(ApiError::internal)?
            .to_hex();
        if let Ok(mut cache) = self.signed_bindings.lock() {
            if cache.len() >= MAX_SIGNED_CACHE {
                cache.clear();
            }
            cache.insert(b.version, (kid, hex.clone()));
        }
        Ok(hex)
    }

    /// `GET network/bindings?after=N`: the bindings with a version above `after`, lowest
    /// first, at most [`MAX_BINDINGS_PER_PAGE`], signed now.
    pub fn bindings_page(&self, after: u64) -> Result<BindingsPage, ApiError> {
        // The version first: a binding made while the page is read has a higher version
        // than the one answered, so the next page (or poll) gets it.
        let version = self.store.binding_version()?;
        let (records, more) = self.store.bindings_after(after, MAX_BINDINGS_PER_PAGE)?;
        let bindings = records
            .iter()
            .map(|b| self.signed_binding(b))
            .collect::<Result<Vec<_>, _>>()?;
        let version = records.last().map_or(version, |b| b.version.max(version));
        Ok(BindingsPage {
            bindings,
            version,
            more,
        })
    }

    /// Counts an announcement's outcome.
    fn count(&self, outcome: AnnouncementOutcome) {
        self.announcements
            .get_or_create(&crate::metrics::OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// `POST nodes/ingests`: an `ingest` member (`by`, already authenticated with the role)
    /// announces a complete ingest it originated. See the module docs.
    pub async fn announce(
        &self,
        by: &Certificate,
        body: IngestAnnouncement,
    ) -> Result<AnnouncementResult, ApiError> {
        let res = self.announce_inner(by, body).await;
        match &res {
            Ok((_, outcome)) => self.count(*outcome),
            Err(e) if e.status.is_client_error() => self.count(AnnouncementOutcome::Refused),
            Err(_) => {}
        }
        res.map(|(r, _)| r)
    }

    async fn announce_inner(
        &self,
        by: &Certificate,
        body: IngestAnnouncement,
    ) -> Result<(AnnouncementResult, AnnouncementOutcome), ApiError> {
        if body.manifest.len() > 2 * MAX_SIGNED_MANIFEST_BYTES {
            return Err(bad_manifest("the manifest is too large"));
        }
        let bytes =
            hex::decode(&body.manifest).map_err(|_| bad_manifest("manifest: expected hex"))?;
        let signed =
            SignedManifest::decode(&bytes).map_err(|e| bad_manifest(format!("manifest: {e}")))?;
        let manifest = signed
            .verify()
            .map_err(|e| bad_manifest(format!("manifest: {e}")))?;
        if manifest.origin != by.node {
            return Err(ApiError::forbidden(
                "not_origin",
                "a node announces only ingests it originated (the manifest's origin must be the signing node)",
            ));
        }
        if !manifest.complete {
            return Err(ApiError::bad_request(
                "incomplete_manifest",
                "announce an ingest once its manifest is complete",
            ));
        }
        let id = signed.id();
        let now = now_secs();
        let node = by.node.to_string();
        let rec = IngestRecord {
            manifest: id.0,
            movie: manifest.movie.as_str().to_owned(),
            origin: manifest.origin.0,
            ingest_id: manifest.ingest_id,
            seq: manifest.seq,
            title: manifest.title.clone(),
            year: manifest.year,
            complete: manifest.complete,
            announced_at: now,
            order: 0,
        };
        let me = node.clone();
        let me2 = node.clone();
        let done = self
            .store
            .announce_ingest(
                rec,
                tmdb_of(&manifest.movie),
                MAX_ANNOUNCEMENTS_PER_NODE,
                move |r| crate::requests::holder(r, now_ms()).is_some_and(|n| n != me),
                move |r| match r {
                    Some(r) if crate::requests::holder(r, now_ms()) == Some(me2.as_str()) => {
                        (BindHow::Request, r.id.to_string())
                    }
                    _ => (BindHow::FirstIngest, me2.clone()),
                },
            )
            .await?;
        let bound_here = done
            .binding
            .as_ref()
            .is_some_and(|b| b.origin == manifest.origin.0 && b.ingest_id == manifest.ingest_id);
        let outcome = if done.bound_now {
            AnnouncementOutcome::Bound
        } else if bound_here {
            AnnouncementOutcome::AlreadyBoundHere
        } else if done.binding.is_some() {
            AnnouncementOutcome::BoundElsewhere
        } else {
            AnnouncementOutcome::Deferred
        };
        if let (true, Some(b)) = (done.bound_now, &done.binding) {
            tracing::info!(movie = %b.movie, origin = %node, manifest = %id, version = b.version, how = ?b.how, "movie bound");
        } else {
            tracing::info!(movie = %manifest.movie.as_str(), origin = %node, manifest = %id, outcome = outcome.label(), "ingest announced");
        }
        let binding = match &done.binding {
            Some(b) => Some(self.signed_binding(b)?),
            None => None,
        };
        Ok((
            AnnouncementResult {
                binding,
                bound_here,
            },
            outcome,
        ))
    }

    /// A request was reported done by `node` with `manifest`: binds `movie` to that
    /// manifest's lineage if `node` announced it for `movie` and the movie is unbound.
    pub async fn bind_for_request(
        &self,
        node: &NodeId,
        request_id: u64,
        movie: &str,
        manifest: &str,
    ) -> Result<(), ApiError> {
        let Ok(id) = manifest.parse::<ManifestId>() else {
            tracing::warn!(request = request_id, %manifest, "done report names no valid manifest id; nothing bound");
            return Ok(());
        };
        let out = self
            .store
            .bind_movie(BindSpec {
                movie: movie.to_owned(),
                manifest: id.0,
                how: BindHow::Request,
                by: request_id.to_string(),
                only_if_unbound: true,
                origin: Some(node.0),
                now: now_secs(),
            })
            .await?;
        match out {
            BindOutcome::Bound(b) => {
                tracing::info!(movie = %b.movie, request = request_id, manifest = %id, version = b.version, "movie bound by its request");
            }
            BindOutcome::Unchanged(_) => {}
            other => {
                tracing::info!(request = request_id, %movie, manifest = %id, outcome = ?other, "done report's manifest was not announced by its node for this movie; nothing bound");
            }
        }
        Ok(())
    }

    /// `GET admin/movies`: every binding with the ingests announced for its movie, and
    /// the movies with announcements and no binding.
    pub fn movies(&self) -> Result<MoviesView, ApiError> {
        let mut movies = Vec::new();
        for b in self.store.bindings()? {
            let ingests = self.store.ingests_of(&b.movie)?;
            movies.push(view(&b, ingests.iter().map(IngestView::of).collect()));
        }
        let mut unbound = Vec::new();
        for movie in self.store.announced_movies()? {
            if self.store.binding(&movie)?.is_some() {
                continue;
            }
            let ingests = self.store.ingests_of(&movie)?;
            unbound.push(UnboundMovieView {
                movie,
                ingests: ingests.iter().map(IngestView::of).collect(),
            });
        }
        Ok(MoviesView {
            network_id: self.keyring().network_id().to_owned(),
            version: self.store.binding_version()?,
            movies,
            unbound,
        })
    }

    /// `POST admin/movies/{movie_id}/bind`: binds or re-points `movie` to the lineage of
    /// an announced complete manifest of it.
    pub async fn bind(
        &self,
        by: &Operator,
        movie: &str,
        req: BindRequest,
    ) -> Result<MovieView, ApiError> {
        let movie = MovieId::new(movie)
            .map_err(|e| ApiError::bad_request("invalid_movie_id", e.to_string()))?;
        let manifest = parse_manifest_id(&req.manifest)?;
        let out = self
            .store
            .bind_movie(BindSpec {
                movie: movie.as_str().to_owned(),
                manifest: manifest.0,
                how: BindHow::Admin,
                by: by.name(),
                only_if_unbound: false,
                origin: None,
                now: now_secs(),
            })
            .await?;
        let b = match out {
            BindOutcome::Bound(b) => {
                tracing::warn!(movie = %b.movie, manifest = %manifest, version = b.version, by = %by.name(), "movie bound by an operator");
                b
            }
            BindOutcome::Unchanged(b) => b,
            BindOutcome::UnknownManifest => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_manifest",
                    format!("no node announced manifest {manifest}"),
                ))
            }
            BindOutcome::OtherMovie(other) => {
                return Err(ApiError::conflict(
                    "wrong_movie",
                    format!(
                        "manifest {manifest} is of movie {other}, not {}",
                        movie.as_str()
                    ),
                ))
            }
            BindOutcome::Incomplete => {
                return Err(ApiError::conflict(
                    "incomplete_manifest",
                    format!("manifest {manifest} is not complete"),
                ))
            }
        };
        let ingests = self.store.ingests_of(&b.movie)?;
        Ok(view(&b, ingests.iter().map(IngestView::of).collect()))
    }
}
