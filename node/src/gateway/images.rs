//! `GET /images/{hash}`: posters and backdrops by the BLAKE3 hash of their bytes.
//!
//! The hash is parsed strictly (64 lowercase hex characters); anything else, traversal
//! attempts included, is a 400 JSON error before any disk or network access. The image is
//! served from this node's store when it is there; otherwise it is fetched over HTTP from the
//! gateways of live member nodes that should have it (the origin in each one's catalog
//! record, which validation holds to `http(s)://host[:port]`; nothing in the request names
//! where to fetch from) (the origins of manifests whose metadata names
//! it, then other nodes holding those movies), verified against the hash and checked to be
//! an image, stored, and served. Only PNG, JPEG and WebP bytes are ever served, so this route
//! cannot be used to read media segments (which share the store) without a playback token.
//!
//! Answers are immutable: `Cache-Control: public, max-age=31536000, immutable`, `ETag` = the
//! hash (and `If-None-Match` gives 304).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use reelnet_proto::{MovieId, NodeId, SegmentHash};
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{json_error, GatewayState};
use crate::ingest::meta::{check_image, ImageKind, MAX_IMAGE_BYTES};

/// Time limit of one fetch from a peer's gateway.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// Most peers asked for one image.
pub const MAX_PEERS_ASKED: usize = 4;

/// The route.
pub fn route(state: GatewayState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("images" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(move |raw: String, if_none_match: Option<String>| {
            let state = state.clone();
            async move {
                let res = image(&state, &raw, if_none_match.as_deref()).await;
                state.metrics.request("images", res.status().as_u16());
                Ok::<_, Infallible>(res)
            }
        })
}

/// Parses exactly 64 lowercase hex characters.
pub fn parse_hash(raw: &str) -> Option<SegmentHash> {
    if raw.len() != 64 || !raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    raw.parse().ok()
}

async fn image(state: &GatewayState, raw: &str, if_none_match: Option<&str>) -> Response {
    let Some(hash) = parse_hash(raw) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_image_hash",
            "an image is named by the 64 lowercase hex characters of its BLAKE3 hash",
        );
    };
    let etag = format!("\"{hash}\"");
    if let Some(tags) = if_none_match {
        if tags.split(',').any(|t| {
            let t = t.trim().trim_start_matches("W/");
            t == etag || t == "*"
        }) && state.store.has_segment(&hash)
        {
            return with_cache_headers(
                warp::reply::with_status(warp::reply(), StatusCode::NOT_MODIFIED).into_response(),
                &etag,
            );
        }
    }
    let store = state.store.clone();
    let local = tokio::task::spawn_blocking(move || store.read_segment(&hash))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let bytes = match local {
        Some(bytes) => bytes,
        None => match from_peers(state, &hash).await {
            Ok(bytes) => bytes,
            Err(res) => return res,
        },
    };
    // The store also holds media segments; only images leave through this route.
    let Some(kind) = ImageKind::sniff(&bytes) else {
        return not_found(&hash);
    };
    let mut res = Response::new(bytes.into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(kind.content_type()),
    );
    with_cache_headers(res, &etag)
}

fn with_cache_headers(mut res: Response, etag: &str) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(v) = header::HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    res
}

fn not_found(hash: &SegmentHash) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no image {hash} in the network"),
    )
}

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(PEER_TIMEOUT)
                .connect_timeout(PEER_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()
        })
        .as_ref()
}

/// The gateways that should hold `hash`: origins of manifests whose metadata names it first,
/// then other live nodes holding those movies; never this node.
async fn candidates(state: &GatewayState, hash: &SegmentHash) -> Vec<String> {
    // An index lookup: bounded work whatever the size of the catalog.
    let Ok(refs) = state.catalog.image_refs(*hash).await else {
        return Vec::new();
    };
    let mut origins: BTreeSet<NodeId> = BTreeSet::new();
    let mut referencing: BTreeSet<MovieId> = BTreeSet::new();
    for (movie, origin) in refs {
        origins.insert(origin);
        referencing.insert(movie);
    }
    if referencing.is_empty() {
        return Vec::new();
    }
    let Ok(live) = state.catalog.live_nodes().await else {
        return Vec::new();
    };
    let mut first = Vec::new();
    let mut then = Vec::new();
    for node in live {
        if node.node == state.node_id {
            continue;
        }
        // Only a member's gateway, by the origin its validated record gives (never a URL
        // from the request): `{origin}/images/{hash}`, no redirects followed.
        let Ok(origin) = reelnet_proto::catalog::gateway_origin(&node.gateway_url) else {
            continue;
        };
        let url = origin.to_owned();
        if origins.contains(&node.node) {
            first.push(url);
        } else if let Ok(Some(record)) = state.catalog.record(node.node).await {
            if record.held.iter().any(|h| referencing.contains(&h.movie)) {
                then.push(url);
            }
        }
    }
    first.extend(then);
    first.truncate(MAX_PEERS_ASKED);
    first
}

/// Fetches `hash` from the peers that should hold it, verifies, keeps it as evictable cache
/// in the store and returns it.
async fn from_peers(state: &GatewayState, hash: &SegmentHash) -> Result<Vec<u8>, Response> {
    let peers = candidates(state, hash).await;
    if peers.is_empty() {
        return Err(not_found(hash));
    }
    let Some(http) = client() else {
        return Err(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no HTTP client",
        ));
    };
    for base in peers {
        match fetch_one(http, &base, hash).await {
            Ok(bytes) => {
                let store = state.store.clone();
                let (h, copy) = (*hash, bytes.clone());
                match tokio::task::spawn_blocking(move || store.put_cached_segment(&copy, &h)).await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => tracing::warn!(%hash, %err, "cannot store a fetched image"),
                    Err(err) => tracing::warn!(%hash, %err, "image store task failed"),
                }
                tracing::debug!(%hash, peer = %base, "image fetched from a peer");
                return Ok(bytes);
            }
            Err(reason) => tracing::warn!(%hash, peer = %base, %reason, "image fetch refused"),
        }
    }
    Err(json_error(
        StatusCode::BAD_GATEWAY,
        "image_unavailable",
        format!("no node that should hold image {hash} gave it"),
    ))
}

async fn fetch_one(
    http: &reqwest::Client,
    base: &str,
    hash: &SegmentHash,
) -> Result<Vec<u8>, String> {
    let mut res = http
        .get(format!("{base}/images/{hash}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    if res
        .content_length()
        .is_some_and(|n| n > MAX_IMAGE_BYTES as u64)
    {
        return Err("larger than the image limit".to_owned());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_IMAGE_BYTES {
            return Err("larger than the image limit".to_owned());
        }
        body.extend_from_slice(&chunk);
    }
    let actual = SegmentHash::of(&body);
    if actual != *hash {
        return Err(format!("bytes hash to {actual}"));
    }
    check_image(&body)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_parsed_strictly() {
        let h = SegmentHash::of(b"x");
        assert_eq!(parse_hash(&h.to_string()), Some(h));
        for bad in [
            String::new(),
            h.to_string().to_uppercase(),
            format!("{h}0"),
            h.to_string()[1..].to_owned(),
            "..%2F..%2Fetc%2Fpasswd".to_owned(),
            format!("{}..", &h.to_string()[..62]),
        ] {
            assert_eq!(parse_hash(&bad), None, "{bad}");
        }
    }
}
