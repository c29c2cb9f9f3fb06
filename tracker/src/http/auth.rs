//! `auth/*`: register, verify, resend verification, login, refresh, logout, password reset.

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use reelnet_proto::membership::{NODE_AUTH_HEADER, VIEWER_ADDR_HEADER};

use super::common::{
    accepted, error_response, json, no_content, render, source, v1, with_api, Json, SourceParts,
};
use crate::accounts::{
    EmailRequest, LoginRequest, RefreshRequest, RegisterRequest, ResetConfirmRequest, TokenRequest,
};
use crate::api::Api;
use crate::error::ApiError;

pub(super) fn routes(api: Api, limit: u64) -> BoxedFilter<(Response,)> {
    let a = || with_api(api.clone());
    let trusted = api.config().http.trusted_proxies.clone();
    let src = move || source(trusted.clone());
    let register = v1()
        .and(warp::path!("auth" / "register"))
        .and(warp::post())
        .and(a())
        .and(src())
        .and(json(limit))
        .then(
            |api: Api, src: SourceParts, b: Json<RegisterRequest>| async move {
                let res = match b.decode() {
                    Ok(req) => api.register(req, &src.resolve(&api, b.raw())).await,
                    Err(e) => Err(e),
                };
                accepted(res)
            },
        );
    let verify = v1()
        .and(warp::path!("auth" / "verify"))
        .and(warp::post())
        .and(a())
        .and(json(limit))
        .then(|api: Api, b: Json<TokenRequest>| async move {
            let res = match b.decode() {
                Ok(req) => api.verify_email(req).await,
                Err(e) => Err(e),
            };
            render(StatusCode::OK, res)
        });
    let resend = v1()
        .and(warp::path!("auth" / "resend-verification"))
        .and(warp::post())
        .and(a())
        .and(src())
        .and(json(limit))
        .then(
            |api: Api, src: SourceParts, b: Json<EmailRequest>| async move {
                let res = match b.decode() {
                    Ok(req) => {
                        api.resend_verification(req, &src.resolve(&api, b.raw()))
                            .await
                    }
                    Err(e) => Err(e),
                };
                accepted(res)
            },
        );
    let login = v1()
        .and(warp::path!("auth" / "login"))
        .and(warp::post())
        .and(a())
        .and(src())
        .and(json(limit))
        .then(
            |api: Api, src: SourceParts, b: Json<LoginRequest>| async move {
                let res = match b.decode() {
                    Ok(req) => api.login(req, &src.resolve(&api, b.raw())).await,
                    Err(e) => Err(e),
                };
                render(StatusCode::OK, res)
            },
        );
    let refresh = v1()
        .and(warp::path!("auth" / "refresh"))
        .and(warp::post())
        .and(a())
        .and(json(limit))
        .then(|api: Api, b: Json<RefreshRequest>| async move {
            let res = match b.decode() {
                Ok(req) => api.refresh(req).await,
                Err(e) => Err(e),
            };
            render(StatusCode::OK, res)
        });
    let logout = v1()
        .and(warp::path!("auth" / "logout"))
        .and(warp::post())
        .and(a())
        .and(json(limit))
        .then(|api: Api, b: Json<RefreshRequest>| async move {
            let res = match b.decode() {
                Ok(req) => api.logout(req).await,
                Err(e) => Err(e),
            };
            no_content(res)
        });
    let reset = v1()
        .and(warp::path!("auth" / "password-reset"))
        .and(warp::post())
        .and(a())
        .and(src())
        .and(json(limit))
        .then(
            |api: Api, src: SourceParts, b: Json<EmailRequest>| async move {
                let res = match b.decode() {
                    Ok(req) => api.password_reset(req, &src.resolve(&api, b.raw())).await,
                    Err(e) => Err(e),
                };
                accepted(res)
            },
        );
    let reset_confirm = v1()
        .and(warp::path!("auth" / "password-reset" / "confirm"))
        .and(warp::post())
        .and(a())
        .and(src())
        .and(json(limit))
        .then(
            |api: Api, src: SourceParts, b: Json<ResetConfirmRequest>| async move {
                let res = match b.decode() {
                    Ok(req) => {
                        api.password_reset_confirm(req, &src.resolve(&api, b.raw()))
                            .await
                    }
                    Err(e) => Err(e),
                };
                no_content(res)
            },
        );
    // Credentials only at the tracker's own origin: a request that came through a
    // member's proxy (signed by a node, or naming a viewer) is refused before anything.
    let proxied = v1()
        .and(warp::path("auth"))
        .and(a())
        .and(warp::header::optional::<String>(NODE_AUTH_HEADER))
        .and(warp::header::optional::<String>(VIEWER_ADDR_HEADER))
        .and_then(
            |api: Api, node: Option<String>, viewer: Option<String>| async move {
                if node.is_none() && viewer.is_none() {
                    return Err(warp::reject::not_found());
                }
                api.oauth_refused("credentials_through_proxy");
                Ok::<_, warp::Rejection>(error_response(&ApiError::forbidden(
                    "credentials_at_tracker",
                    "sign-in, registration and password reset happen on the tracker's own site, never through a node",
                )))
            },
        );
    proxied
        .or(register)
        .unify()
        .or(verify)
        .unify()
        .or(resend)
        .unify()
        .or(login)
        .unify()
        .or(refresh)
        .unify()
        .or(logout)
        .unify()
        .or(reset)
        .unify()
        .or(reset_confirm)
        .unify()
        .boxed()
}
