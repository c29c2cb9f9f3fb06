//! Bodies of the tracker's node-facing movie-request routes (JSON over HTTP).
//!
//! A node with request ingest enabled claims work and reports on it; the tracker answers a
//! claim with a [`ClaimView`]. Both sides use these types, so the JSON shape is written down
//! once:
//!
//! | route                              | body              | answer          |
//! |------------------------------------|-------------------|-----------------|
//! | `POST /api/v1/requests/claim`      | [`ClaimRequest`]  | [`ClaimView`] (200) or nothing (204) |
//! | `POST /api/v1/requests/{id}/progress` | [`ProgressReport`] | the request |
//! | `POST /api/v1/requests/{id}/done`  | [`DoneReport`]    | the request     |
//! | `POST /api/v1/requests/{id}/failed`| [`FailedReport`]  | the request     |
//!
//! The tracker rejects unknown fields in the bodies nodes send (`deny_unknown_fields`); the
//! node ignores fields it does not know in a [`ClaimView`], so the tracker may add some.
//! `None` is sent as `null` (no field is skipped), which is what the tracker expects.
//! Only serde here: the HTTP calls live in the node and the routes in the tracker.

use serde::{Deserialize, Serialize};

/// Where a movie request is, as the requests API names it (lowercase in JSON).
///
/// A node reports `downloading` or `transcoding` (or `claimed`) in a [`ProgressReport`]; the
/// tracker refuses the other states there, after parsing, so any of these names parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for an admin's approval (when approval is required).
    Pending,
    /// Waiting for a node to claim it.
    Open,
    /// Leased to a node that has not reported progress yet.
    Claimed,
    /// The node is downloading the torrent.
    Downloading,
    /// The node is transcoding.
    Transcoding,
    /// Ingested and announced.
    Ready,
    /// The node gave up (see the reason).
    Failed,
    /// An admin rejected it.
    Rejected,
}

/// `POST requests/claim`: a node asks for the oldest claimable request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The claiming node's id (its public key), for logs and the admin view.
    pub node_id: String,
}

/// What a node gets when it claims a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimView {
    /// The request's id, used in the report routes.
    pub id: String,
    pub tmdb_id: u64,
    pub title: Option<String>,
    pub year: Option<u16>,
    pub magnet: Option<String>,
    pub torrent_base64: Option<String>,
    /// Proves the claim in progress/done/failed reports.
    pub claim_token: String,
    /// How long the claim lasts without a progress report, seconds.
    pub lease_secs: u64,
}

/// `POST requests/{id}/progress`: renews the lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    pub claim_token: String,
    /// `downloading` or `transcoding`.
    pub state: RequestState,
    /// 0–100.
    #[serde(default)]
    pub percent: f32,
}

/// `POST requests/{id}/done`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoneReport {
    pub claim_token: String,
    /// The ingested movie's `MovieId` (the tracker validates it).
    pub movie_id: String,
    /// The manifest id, when the ingest produced one.
    pub manifest: Option<String>,
}

/// `POST requests/{id}/failed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedReport {
    pub claim_token: String,
    pub reason: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn to_json<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn bodies_have_the_wire_shape() {
        assert_eq!(
            to_json(&ClaimRequest {
                node_id: "ab".into()
            }),
            json!({ "node_id": "ab" })
        );
        assert_eq!(
            to_json(&ProgressReport {
                claim_token: "t".into(),
                state: RequestState::Downloading,
                percent: 12.5,
            }),
            json!({ "claim_token": "t", "state": "downloading", "percent": 12.5 })
        );
        assert_eq!(
            to_json(&DoneReport {
                claim_token: "t".into(),
                movie_id: "tmdb-1".into(),
                manifest: None,
            }),
            json!({ "claim_token": "t", "movie_id": "tmdb-1", "manifest": null })
        );
        assert_eq!(
            to_json(&FailedReport {
                claim_token: "t".into(),
                reason: "no seeders".into(),
            }),
            json!({ "claim_token": "t", "reason": "no seeders" })
        );
        let view = ClaimView {
            id: "7".into(),
            tmdb_id: 603,
            title: Some("The Matrix".into()),
            year: None,
            magnet: None,
            torrent_base64: Some("AAAA".into()),
            claim_token: "t".into(),
            lease_secs: 60,
        };
        let v = to_json(&view);
        assert_eq!(
            v,
            json!({
                "id": "7", "tmdb_id": 603, "title": "The Matrix", "year": null, "magnet": null,
                "torrent_base64": "AAAA", "claim_token": "t", "lease_secs": 60
            })
        );
        assert_eq!(serde_json::from_value::<ClaimView>(v).unwrap(), view);
    }

    #[test]
    fn every_state_has_its_lowercase_name() {
        use RequestState::*;
        for (state, name) in [
            (Pending, "pending"),
            (Open, "open"),
            (Claimed, "claimed"),
            (Downloading, "downloading"),
            (Transcoding, "transcoding"),
            (Ready, "ready"),
            (Failed, "failed"),
            (Rejected, "rejected"),
        ] {
            assert_eq!(to_json(&state), json!(name));
            assert_eq!(
                serde_json::from_value::<RequestState>(json!(name)).unwrap(),
                state
            );
        }
    }

    #[test]
    fn reports_refuse_unknown_fields_and_default_percent() {
        let r: ProgressReport =
            serde_json::from_value(json!({ "claim_token": "t", "state": "transcoding" })).unwrap();
        assert_eq!(r.percent, 0.0);
        assert!(serde_json::from_value::<FailedReport>(
            json!({ "claim_token": "t", "reason": "x", "extra": 1 })
        )
        .is_err());
        assert!(serde_json::from_value::<ClaimRequest>(json!({ "node_id": "a", "x": 1 })).is_err());
        // A claim view with fields this node does not know still parses.
        let mut v = to_json(&ClaimView {
            id: "1".into(),
            tmdb_id: 1,
            title: None,
            year: None,
            magnet: Some("magnet:?".into()),
            torrent_base64: None,
            claim_token: "t".into(),
            lease_secs: 5,
        });
        v["new_field"] = json!(true);
        assert!(serde_json::from_value::<ClaimView>(v).is_ok());
    }
}
