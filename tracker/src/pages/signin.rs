//! Sign-in, registration, email verification and password reset pages.

use bytes::Bytes;
use warp::http::StatusCode;

use super::html::{self, escape, hidden, input, message};
use super::{fields, next_of, Answer, Handled, Pages, Req};
use crate::accounts::{EmailRequest, RegisterRequest, ResetConfirmRequest, TokenRequest};
use crate::error::ApiError;

fn login_body(
    pages: &Pages,
    csrf: &str,
    next: &str,
    email: &str,
    note: Option<(&str, &str)>,
) -> String {
    let note = note.map(|(k, t)| message(k, t)).unwrap_or_default();
    let (passkey, passkey_off) = pages.passkey_button("passkey-sign-in", "Use a passkey");
    format!(
        "{note}<form method=\"post\" action=\"/login\">{csrf}{next}{email}{password}\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form><p>{passkey}</p>{passkey_off}\
         <p id=\"passkey-status\" role=\"status\"></p>\
         <p><a href=\"/register\">Create an account</a> · <a href=\"/reset\">Forgot your password?</a></p>\
         <p class=\"fine\">Type your password only on this site ({origin}), never on a node's page.</p>",
        csrf = html::csrf(csrf),
        next = hidden("next", next),
        email = input("Email", "email", "email", email, "username webauthn"),
        password = input("Password", "password", "password", "", "current-password"),
        origin = escape(&pages.inner.origin),
    )
}

/// `GET /login?next=`
pub(super) async fn login_page(pages: Pages, req: Req, query: String) -> Answer {
    let q = fields(query.as_bytes());
    let next = next_of(q.get("next").map(String::as_str));
    if pages.session(&req).is_some() {
        return Answer::redirect(StatusCode::FOUND, &next);
    }
    pages.with_csrf(&req, None, |csrf| {
        Answer::page_with_script(
            StatusCode::OK,
            "Sign in",
            &login_body(&pages, csrf, &next, "", None),
        )
    })
}

/// `POST /login`
pub(super) async fn login_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.form(&req, &body)?;
    let src = pages.direct_source(&req, &body)?;
    let next = next_of(f.field("next"));
    let email = f.text("email");
    let checked = pages
        .api()
        .check_credentials(&email, f.text("password"), &src);
    Ok(match checked.await {
        Ok(user) => match pages.start_session(&req, &user.id).await {
            Ok(cookie) => Answer::redirect(StatusCode::SEE_OTHER, &next).cookie(cookie),
            Err(e) => Answer::error("Sign in", &e),
        },
        Err(e) => pages.with_csrf(&req, f.session.as_ref(), |csrf| {
            Answer::page_with_script(
                e.status,
                "Sign in",
                &login_body(&pages, csrf, &next, &email, Some(("error", &e.message))),
            )
            .retry_after(&e)
        }),
    })
}

fn register_body(
    csrf: &str,
    bootstrap: &str,
    email: &str,
    name: &str,
    note: Option<(&str, &str)>,
) -> String {
    let note = note.map(|(k, t)| message(k, t)).unwrap_or_default();
    let intro = if bootstrap.is_empty() {
        String::new()
    } else {
        message(
            "info",
            "This is an admin link: the account you create with it becomes this network's first admin.",
        )
    };
    format!(
        "{intro}{note}<form method=\"post\" action=\"/register\">{csrf}{bootstrap}{email}{name}{password}\
         <button type=\"submit\" id=\"register\">Create account</button></form>\
         <p><a href=\"/login\">Already have an account? Sign in</a></p>",
        csrf = html::csrf(csrf),
        bootstrap = if bootstrap.is_empty() {
            String::new()
        } else {
            hidden("bootstrap", bootstrap)
        },
        email = input("Email", "email", "email", email, "email"),
        name = input("Display name", "display-name", "text", name, "nickname"),
        password = input("Password", "password", "password", "", "new-password"),
    )
}

/// `GET /register?bootstrap=`
pub(super) async fn register_page(pages: Pages, req: Req, query: String) -> Answer {
    let q = fields(query.as_bytes());
    let bootstrap = q.get("bootstrap").cloned().unwrap_or_default();
    pages.form_page(&req, |csrf| {
        Answer::page(
            StatusCode::OK,
            "Create an account",
            &register_body(csrf, &bootstrap, "", "", None),
        )
    })
}

/// `POST /register`
pub(super) async fn register_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.form(&req, &body)?;
    let src = pages.direct_source(&req, &body)?;
    let bootstrap = f.text("bootstrap");
    let (email, name) = (f.text("email"), f.text("display-name"));
    let res = pages
        .api()
        .register(
            RegisterRequest {
                email: email.clone(),
                password: f.text("password"),
                display_name: name.clone(),
                bootstrap: (!bootstrap.is_empty()).then(|| bootstrap.clone()),
            },
            &src,
        )
        .await;
    Ok(match res {
        Ok(()) => Answer::page(
            StatusCode::OK,
            "Check your email",
            &format!(
                "{}<p>Open the link in the message to confirm your address, then <a href=\"/login\">sign in</a>.</p>",
                message(
                    "info",
                    &format!("We sent a message to {email}."),
                )
            ),
        ),
        Err(e) => pages.with_csrf(&req, f.session.as_ref(), |csrf| {
            Answer::page(
                e.status,
                "Create an account",
                &register_body(csrf, &bootstrap, &email, &name, Some(("error", &e.message))),
            )
            .retry_after(&e)
        }),
    })
}

/// The `token` of a mailed link's query; without one, the error page titled `title`.
fn link_token(query: &str, title: &str) -> Result<String, Answer> {
    match fields(query.as_bytes()).remove("token") {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(Answer::error(
            title,
            &ApiError::bad_request(
                "invalid_token",
                "this link is not complete: open the whole link from the email",
            ),
        )),
    }
}

/// `GET /verify?token=`: a confirm button; never verifies on GET.
pub(super) async fn verify_page(pages: Pages, req: Req, query: String) -> Handled {
    let token = link_token(&query, "Confirm your email")?;
    Ok(pages.form_page(&req, |csrf| {
        Answer::page(
            StatusCode::OK,
            "Confirm your email",
            &format!(
                "<form method=\"post\" action=\"/verify\">{}{}<p>Confirm this email address for your reelnet account.</p>\
                 <button type=\"submit\" id=\"verify\">Confirm</button></form>",
                html::csrf(csrf),
                hidden("token", &token)
            ),
        )
    }))
}

/// `POST /verify`
pub(super) async fn verify_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.form(&req, &body)?;
    let token = f.text("token");
    let verified = pages.api().verify_email(TokenRequest { token }).await;
    Ok(match verified {
        Ok(user) => Answer::page(
            StatusCode::OK,
            "Email confirmed",
            &format!(
                "{}<p><a href=\"/login\">Sign in</a></p>",
                message("info", &format!("{} is confirmed.", user.email))
            ),
        ),
        Err(e) => Answer::error("Confirm your email", &e),
    })
}

fn reset_body(csrf: &str, email: &str, note: Option<(&str, &str)>) -> String {
    let note = note.map(|(k, t)| message(k, t)).unwrap_or_default();
    format!(
        "{note}<form method=\"post\" action=\"/reset\">{}{}<button type=\"submit\" id=\"send\">Send a reset link</button></form>",
        html::csrf(csrf),
        input("Email", "email", "email", email, "email"),
    )
}

/// `GET /reset`
pub(super) async fn reset_page(pages: Pages, req: Req, _q: String) -> Answer {
    pages.form_page(&req, |csrf| {
        Answer::page(
            StatusCode::OK,
            "Reset your password",
            &reset_body(csrf, "", None),
        )
    })
}

/// `POST /reset`
pub(super) async fn reset_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.form(&req, &body)?;
    let src = pages.direct_source(&req, &body)?;
    let email = f.text("email");
    let sent = pages
        .api()
        .password_reset(
            EmailRequest {
                email: email.clone(),
            },
            &src,
        )
        .await;
    Ok(match sent {
        Ok(()) => Answer::page(
            StatusCode::OK,
            "Check your email",
            &message(
                "info",
                "If an account has this address, we sent it a link to choose a new password.",
            ),
        ),
        Err(e) => pages.with_csrf(&req, f.session.as_ref(), |csrf| {
            Answer::page(
                e.status,
                "Reset your password",
                &reset_body(csrf, &email, Some(("error", &e.message))),
            )
            .retry_after(&e)
        }),
    })
}

fn reset_confirm_body(csrf: &str, token: &str, note: Option<(&str, &str)>) -> String {
    let note = note.map(|(k, t)| message(k, t)).unwrap_or_default();
    format!(
        "{note}<form method=\"post\" action=\"/reset/confirm\">{}{}{}<button type=\"submit\" id=\"save\">Save</button></form>",
        html::csrf(csrf),
        hidden("token", token),
        input("New password", "password", "password", "", "new-password"),
    )
}

/// `GET /reset/confirm?token=`
pub(super) async fn reset_confirm_page(pages: Pages, req: Req, query: String) -> Handled {
    let token = link_token(&query, "Choose a new password")?;
    Ok(pages.form_page(&req, |csrf| {
        Answer::page(
            StatusCode::OK,
            "Choose a new password",
            &reset_confirm_body(csrf, &token, None),
        )
    }))
}

/// `POST /reset/confirm`: every session of the account ends (this browser's too).
pub(super) async fn reset_confirm_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.form(&req, &body)?;
    let src = pages.direct_source(&req, &body)?;
    let token = f.text("token");
    let req_body = ResetConfirmRequest {
        token: token.clone(),
        password: f.text("password"),
    };
    let changed = pages.api().password_reset_confirm(req_body, &src).await;
    Ok(match changed {
        Ok(()) => Answer::page(
            StatusCode::OK,
            "Password changed",
            &format!(
                "{}<p><a href=\"/login\">Sign in</a></p>",
                message(
                    "info",
                    "Your password is changed and every session is signed out."
                )
            ),
        )
        .cookie(pages.clear_cookie(super::SESSION_COOKIE)),
        Err(e) => pages.with_csrf(&req, f.session.as_ref(), |csrf| {
            Answer::page(
                e.status,
                "Choose a new password",
                &reset_confirm_body(csrf, &token, Some(("error", &e.message))),
            )
            .retry_after(&e)
        }),
    })
}
