//! The OAuth protocol endpoints on the tracker's origin (docs/signin.md): `POST
//! /oauth/token`, `POST /oauth/revoke`, `POST /oauth/device_authorization` (form-encoded
//! in, JSON out, RFC 6749 error bodies) and `GET /.well-known/oauth-authorization-server`.
//! A node signs its requests here (`Reelnet-Node-Auth`) over the method, the path and the
//! exact body.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::common::{body, node_auth, source, with_api, NodeAuthParts, SourceParts};
use crate::api::Api;
use crate::oauth::tokens::{DeviceForm, NodeSigner, RevokeForm, TokenForm};
use crate::oauth::OauthFailure;

fn form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OauthFailure> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        OauthFailure::bad(
            "invalid_request",
            format!("the body must be application/x-www-form-urlencoded: {e}"),
        )
    })
}

/// JSON with `Cache-Control: no-store` (RFC 6749 §5.1).
fn reply<T: Serialize>(status: StatusCode, result: Result<T, OauthFailure>) -> Response {
    let mut res = match result {
        Ok(v) => warp::reply::with_status(warp::reply::json(&v), status).into_response(),
        Err(f) => {
            let mut res =
                warp::reply::with_status(warp::reply::json(&f.body), f.status).into_response();
            if let Some(secs) = f.retry_after {
                if let Ok(v) = secs.to_string().parse() {
                    res.headers_mut().insert("retry-after", v);
                }
            }
            res
        }
    };
    res.headers_mut().insert(
        warp::http::header::CACHE_CONTROL,
        warp::http::HeaderValue::from_static("no-store"),
    );
    res
}

fn signer(api: &Api, n: &NodeAuthParts, body: &[u8]) -> NodeSigner {
    n.header.as_ref()?;
    Some(n.check(api, body, None))
}

pub(super) fn routes(api: Api, limit: u64) -> BoxedFilter<(Response,)> {
    let a = || with_api(api.clone());
    let token = warp::path!("oauth" / "token")
        .and(warp::post())
        .and(a())
        .and(node_auth())
        .and(body(limit))
        .then(|api: Api, n: NodeAuthParts, b: Bytes| async move {
            let res = async {
                let f: TokenForm = form(&b)?;
                api.oauth_token(f, signer(&api, &n, &b)).await
            }
            .await;
            reply(StatusCode::OK, res)
        });
    let revoke = warp::path!("oauth" / "revoke")
        .and(warp::post())
        .and(a())
        .and(node_auth())
        .and(body(limit))
        .then(|api: Api, n: NodeAuthParts, b: Bytes| async move {
            let res = async {
                let f: RevokeForm = form(&b)?;
                api.oauth_revoke(f, signer(&api, &n, &b)).await
            }
            .await;
            match res {
                // RFC 7009 §2.2: 200 with an empty body.
                Ok(()) => reply(StatusCode::OK, Ok(serde_json::json!({}))),
                Err(e) => reply::<()>(StatusCode::OK, Err(e)),
            }
        });
    let device = warp::path!("oauth" / "device_authorization")
        .and(warp::post())
        .and(a())
        .and(source(api.config().http.trusted_proxies.clone()))
        .and(body(limit))
        .then(|api: Api, src: SourceParts, b: Bytes| async move {
            let res = match form::<DeviceForm>(&b) {
                Ok(f) => {
                    api.oauth_device_authorization(f, &src.resolve(&api, &b))
                        .await
                }
                Err(e) => Err(e),
            };
            reply(StatusCode::OK, res)
        });
    let metadata = warp::path!(".well-known" / "oauth-authorization-server")
        .and(warp::get())
        .and(a())
        .map(|api: Api| warp::reply::json(&api.oauth_metadata()).into_response());
    token
        .or(revoke)
        .unify()
        .or(device)
        .unify()
        .or(metadata)
        .unify()
        .boxed()
}
