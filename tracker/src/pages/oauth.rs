//! The authorization endpoint's pages (`/oauth/authorize`: checks, sign-in, consent) and
//! the device page (`/device`). The protocol itself is `crate::oauth`; these only call its
//! `Api` methods.

use bytes::Bytes;
use warp::http::StatusCode;

use super::html::{self, escape, hidden, message};
use super::{fields, Answer, Handled, Pages, Req, Session};
use crate::oauth::{AuthorizeError, AuthorizeParams, OauthClient};

/// The parameters, from a query string or the consent form's fields. Repeated parameters
/// are refused (RFC 6749 §3.1).
fn params_of(raw: &[u8]) -> Result<AuthorizeParams, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(raw).map_err(|e| format!("the request is malformed: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    let mut p = AuthorizeParams::default();
    for (k, v) in pairs {
        let slot = match k.as_str() {
            "response_type" => &mut p.response_type,
            "client_id" => &mut p.client_id,
            "redirect_uri" => &mut p.redirect_uri,
            "code_challenge" => &mut p.code_challenge,
            "code_challenge_method" => &mut p.code_challenge_method,
            "state" => {
                if !seen.insert(k.clone()) {
                    return Err("the parameter state is repeated".to_owned());
                }
                p.state = Some(v);
                continue;
            }
            "scope" => {
                if !seen.insert(k.clone()) {
                    return Err("the parameter scope is repeated".to_owned());
                }
                p.scope = Some(v);
                continue;
            }
            // The consent form's own fields.
            "csrf" | "decision" => continue,
            _ => continue,
        };
        if !seen.insert(k.clone()) {
            return Err(format!("the parameter {k} is repeated"));
        }
        *slot = v;
    }
    Ok(p)
}

/// The authorize URL of `params` (where sign-in sends the browser back to).
fn authorize_url(p: &AuthorizeParams) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ];
    if let Some(s) = &p.state {
        pairs.push(("state", s));
    }
    if let Some(s) = &p.scope {
        pairs.push(("scope", s));
    }
    match serde_urlencoded::to_string(&pairs) {
        Ok(q) => format!("{}?{q}", reelnet_proto::oauth::AUTHORIZE_PATH),
        Err(_) => reelnet_proto::oauth::AUTHORIZE_PATH.to_owned(),
    }
}

/// A refused authorization request: back to the client when its redirect URI checked out,
/// else an error page here (never a redirect to an unchecked URI).
fn refused(pages: &Pages, e: AuthorizeError, status: StatusCode) -> Answer {
    pages.api().oauth_refused(e.reason);
    match e.redirect {
        Some(url) => Answer::redirect(status, &url),
        None => Answer::page(
            StatusCode::BAD_REQUEST,
            "Sign-in request refused",
            &message("error", &e.message),
        ),
    }
}

fn bad_request(text: &str) -> Answer {
    Answer::page(
        StatusCode::BAD_REQUEST,
        "Sign-in request refused",
        &message("error", text),
    )
}

/// Issues the code and sends the browser back to the client.
async fn code_redirect(
    pages: &Pages,
    s: &Session,
    client: &OauthClient,
    p: &AuthorizeParams,
    status: StatusCode,
) -> Answer {
    match pages
        .api()
        .oauth_issue_code(&s.user, client, p, s.rec.auth_time)
        .await
    {
        Ok(url) => Answer::redirect(status, &url),
        Err(e) => Answer::error("Sign-in request", &e),
    }
}

fn consent_page(s: &Session, client: &OauthClient, p: &AuthorizeParams) -> Answer {
    let warning = if client.open {
        message(
            "error",
            "This node joined the network by open enrollment: nobody vouched for its operator. Allow it only if you trust this site.",
        )
    } else {
        String::new()
    };
    let mut fields = html::csrf(&s.rec.csrf);
    for (k, v) in [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ] {
        fields.push_str(&hidden(k, v));
    }
    if let Some(st) = &p.state {
        fields.push_str(&hidden("state", st));
    }
    if let Some(sc) = &p.scope {
        fields.push_str(&hidden("scope", sc));
    }
    Answer::page(
        StatusCode::OK,
        "Sign in to a node",
        &format!(
            "<p>The site <strong id=\"client-origin\">{origin}</strong> asks to sign you in as <strong>{email}</strong>.</p>\
             {open}{warning}\
             <p>It will be able to play movies and use your lists, progress and rooms as you. It cannot see your password or change your account.</p>\
             <form method=\"post\" action=\"/oauth/authorize\">{fields}\
             <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
            origin = escape(&client.origin),
            email = escape(&s.user.email),
            open = if client.open {
                "<p class=\"flag\" id=\"open-member\">Open member</p>"
            } else {
                ""
            },
        ),
    )
}

/// `GET /oauth/authorize`
pub(super) async fn authorize_page(pages: Pages, req: Req, query: String) -> Handled {
    let p = params_of(query.as_bytes()).map_err(|why| bad_request(&why))?;
    let client = pages
        .api()
        .oauth_check_authorize(&p)
        .map_err(|e| refused(&pages, e, StatusCode::FOUND))?;
    let Some(s) = pages.session(&req) else {
        return Err(Answer::redirect(
            StatusCode::FOUND,
            &Pages::login_url(&authorize_url(&p)),
        ));
    };
    let consented = pages.api().oauth_has_consent(&s.user.id, &client.node_id);
    Ok(match consented {
        Ok(true) => code_redirect(&pages, &s, &client, &p, StatusCode::FOUND).await,
        Ok(false) => consent_page(&s, &client, &p),
        Err(e) => Answer::error("Sign-in request", &e),
    })
}

/// `POST /oauth/authorize`: the consent form.
pub(super) async fn authorize_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let p = params_of(&body).map_err(|why| bad_request(&why))?;
    let f = pages.signed_in_form(&req, &body, &authorize_url(&p))?;
    let s = &f.session;
    let client = pages
        .api()
        .oauth_check_authorize(&p)
        .map_err(|e| refused(&pages, e, StatusCode::SEE_OTHER))?;
    Ok(match f.field("decision") {
        Some("allow") => {
            if let Err(e) = pages.api().oauth_grant_consent(&s.user.id, &client).await {
                return Err(Answer::error("Sign-in request", &e));
            }
            tracing::info!(user = %s.user.id, client = %client.node_id, "consent given");
            code_redirect(&pages, s, &client, &p, StatusCode::SEE_OTHER).await
        }
        Some("deny") => Answer::redirect(
            StatusCode::SEE_OTHER,
            &pages.api().oauth_denied_redirect(&client, &p),
        ),
        _ => consent_page(s, &client, &p),
    })
}

fn code_form(csrf: &str, code: &str, note: Option<&str>) -> String {
    let note = note.map(|t| message("error", t)).unwrap_or_default();
    format!(
        "{note}<p>Type the code your TV, script or other device shows.</p>\
         <form method=\"post\" action=\"/device\">{}\
         <label for=\"user-code\">Code</label><input id=\"user-code\" name=\"user_code\" value=\"{}\" autocomplete=\"off\" autocapitalize=\"characters\" required>\
         <button type=\"submit\" id=\"continue\">Continue</button></form>",
        html::csrf(csrf),
        html::attr(code),
    )
}

/// `GET /device?user_code=`
pub(super) async fn device_page(pages: Pages, req: Req, query: String) -> Answer {
    let Some(s) = pages.session(&req) else {
        return Answer::redirect(StatusCode::FOUND, &Pages::login_url(&req.path_and_query));
    };
    let code = fields(query.as_bytes())
        .get("user_code")
        .cloned()
        .unwrap_or_default();
    Answer::page(
        StatusCode::OK,
        "Connect a device",
        &code_form(&s.rec.csrf, &code, None),
    )
}

/// `POST /device`: the code (then the device's name, allow / deny), or the decision.
pub(super) async fn device_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.signed_in_form(&req, &body, "/device")?;
    let s = &f.session;
    let code = f.text("user_code");
    let title = "Connect a device";
    Ok(match f.field("decision") {
        None => {
            let src = req.src.resolve(pages.api(), &body);
            match pages.api().device_lookup(&code, &src) {
                Ok(v) => {
                    let node = match &v.node_origin {
                        Some(o) => format!(
                            "<p>It asks to be bound to the node <strong id=\"device-node\">{}</strong>.</p>",
                            escape(o)
                        ),
                        None => "<p>It asks for access to the whole network (no one node).</p>".to_owned(),
                    };
                    Answer::page(
                        StatusCode::OK,
                        title,
                        &format!(
                            "<p>The device <strong id=\"device-name\">{name}</strong> (code {code}) asks to sign in as <strong>{email}</strong>.</p>{node}\
                             <p>It will be able to play movies and use your lists as you; it cannot change your account. The request expires at {exp}.</p>\
                             <form method=\"post\" action=\"/device\">{csrf}{hcode}\
                             <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
                             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
                            name = escape(&v.device_name),
                            code = escape(&v.user_code),
                            email = escape(&s.user.email),
                            exp = html::date(v.expires_at),
                            csrf = html::csrf(&s.rec.csrf),
                            hcode = hidden("user_code", &v.user_code),
                        ),
                    )
                }
                Err(e) => Answer::page(
                    e.status,
                    title,
                    &code_form(&s.rec.csrf, &code, Some(&e.message)),
                )
                .retry_after(&e),
            }
        }
        Some(d) => {
            let allow = d == "allow";
            match pages.api().device_decide(&code, &s.user, allow).await {
                Ok(()) => Answer::page(
                    StatusCode::OK,
                    title,
                    &message(
                        "info",
                        if allow {
                            "The device is signed in. You can go back to it now."
                        } else {
                            "The device was refused."
                        },
                    ),
                ),
                Err(e) => Answer::page(
                    e.status,
                    title,
                    &code_form(&s.rec.csrf, &code, Some(&e.message)),
                ),
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_and_repeats_are_refused() {
        let p = params_of(b"response_type=code&client_id=n1&redirect_uri=https%3A%2F%2Fa.example%2Fauth%2Fcallback&state=a%20b&code_challenge=x&code_challenge_method=S256&csrf=t&decision=allow").unwrap();
        assert_eq!(p.redirect_uri, "https://a.example/auth/callback");
        assert_eq!(p.state.as_deref(), Some("a b"));
        let url = authorize_url(&p);
        assert!(
            url.starts_with("/oauth/authorize?response_type=code&"),
            "{url}"
        );
        let q = url.split_once('?').unwrap().1;
        let again = params_of(q.as_bytes()).unwrap();
        assert_eq!(again.state, p.state);
        assert_eq!(again.redirect_uri, p.redirect_uri);
        assert!(super::super::safe_next(&url));
        assert!(params_of(b"client_id=a&client_id=b").is_err());
        assert!(params_of(b"state=a&state=b").is_err());
    }
}
