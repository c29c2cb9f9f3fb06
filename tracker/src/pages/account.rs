//! The account page and its changes (password, sessions, passkeys, deleting the account),
//! and signing out. Every change needs the session, the form's CSRF token and a sign-in
//! within `[pages] recent_sign_in_secs` (else the page asks for the password again).

use bytes::Bytes;
use warp::http::StatusCode;

use super::html::{self, attr, escape, hidden, input, message};
use super::{next_of, to_login, Answer, Form, Handled, Pages, Req, Session, SESSION_COOKIE};

fn account_body(pages: &Pages, s: &Session, note: Option<(&str, &str)>) -> String {
    let u = &s.user;
    let csrf = html::csrf(&s.rec.csrf);
    let note = note.map(|(k, t)| message(k, t)).unwrap_or_default();
    let verified = if u.email_verified {
        "confirmed".to_owned()
    } else {
        format!(
            "not confirmed yet <form method=\"post\" action=\"/account/resend-verification\">{csrf}\
             <button type=\"submit\" id=\"resend-verification\">Send the link again</button></form>"
        )
    };
    let sessions = match pages.api().oauth_sessions(&u.id) {
        Ok(list) if list.is_empty() => {
            "<p id=\"no-sessions\">No sessions through nodes, scripts or devices.</p>".to_owned()
        }
        Ok(list) => {
            let rows: String = list
                .iter()
                .map(|v| {
                    let who = v.origin.clone().unwrap_or_else(|| v.client.clone());
                    let open = if v.open {
                        " <span class=\"flag\">open member</span>"
                    } else {
                        ""
                    };
                    format!(
                        "<tr><td>{}{open}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/account/sessions/end\">{csrf}{}\
                         <button type=\"submit\" class=\"end-session\">End</button></form></td></tr>",
                        escape(&who),
                        html::date(v.created_at),
                        v.last_used_at.map(html::date).unwrap_or_else(|| "—".to_owned()),
                        hidden("sid", &v.sid),
                    )
                })
                .collect();
            format!(
                "<table id=\"sessions\"><thead><tr><th>Where</th><th>Started</th><th>Last used</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
            )
        }
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot list sessions");
            message("error", "Sessions cannot be listed right now.")
        }
    };
    let passkeys = match pages.api().store().passkeys(&u.id) {
        Ok(list) if list.is_empty() => "<p>No passkeys yet.</p>".to_owned(),
        Ok(list) => {
            let items: String = list
                .iter()
                .map(|(id, rec)| {
                    format!(
                        "<li>Added {} <form method=\"post\" action=\"/account/passkeys/delete\">{csrf}{}\
                         <button type=\"submit\" class=\"delete-passkey\">Remove</button></form></li>",
                        html::date(rec.created_at),
                        hidden("id", &hex::encode(id))
                    )
                })
                .collect();
            format!("<ul id=\"passkeys\">{items}</ul>")
        }
        Err(_) => message("error", "Passkeys cannot be listed right now."),
    };
    let (add_passkey, passkey_off) = pages.passkey_button("add-passkey", "Add a passkey");
    format!(
        "{note}<section><h2>Account</h2><dl><dt>Email</dt><dd id=\"account-email\">{email}</dd>\
         <dt>Status</dt><dd>{verified}</dd>\
         <dt>Name</dt><dd id=\"display-name\">{name}</dd></dl>\
         <form method=\"post\" action=\"/logout\">{csrf}<button type=\"submit\" id=\"sign-out\">Sign out</button></form></section>\
         <section><h2>Sessions</h2>{sessions}</section>\
         <section><h2>Password</h2><form method=\"post\" action=\"/account/password\">{csrf}{current}{new}\
         <button type=\"submit\" id=\"change-password\">Change password</button></form>\
         <p class=\"fine\">Changing it signs out every other session.</p></section>\
         <section><h2>Passkeys</h2>{passkeys}{add_passkey}{passkey_off}<p id=\"passkey-status\" role=\"status\"></p>\
         <input type=\"hidden\" id=\"csrf\" value=\"{csrf_attr}\"></section>\
         <section><h2>Delete the account</h2><form method=\"post\" action=\"/account/delete\">{csrf}\
         <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" id=\"confirm-delete\" required> Delete my account and everything stored for it</label>\
         <button type=\"submit\" id=\"delete-account\" class=\"danger\">Delete account</button></form></section>",
        email = escape(&u.email),
        name = escape(&u.display_name),
        current = input("Current password", "current-password", "password", "", "current-password"),
        new = input("New password", "new-password", "password", "", "new-password"),
        csrf_attr = attr(&s.rec.csrf),
    )
}

/// `GET /account`
pub(super) async fn account_page(pages: Pages, req: Req, _q: String) -> Answer {
    let Some(s) = pages.session(&req) else {
        return to_login("/account");
    };
    Answer::page_with_script(
        StatusCode::OK,
        "Your account",
        &account_body(&pages, &s, None),
    )
}

fn account_with(pages: &Pages, s: &Session, status: StatusCode, note: (&str, &str)) -> Answer {
    Answer::page_with_script(status, "Your account", &account_body(pages, s, Some(note)))
}

/// The "confirm it is you" page: the password again, then back to `next`.
fn reauth_page(s: &Session, next: &str, note: Option<&str>) -> Answer {
    let note = note.map(|t| message("error", t)).unwrap_or_default();
    Answer::page(
        StatusCode::FORBIDDEN,
        "Confirm it is you",
        &format!(
            "{note}{}<form method=\"post\" action=\"/account/reauth\">{}{}{}\
             <button type=\"submit\" id=\"reauth\">Confirm</button></form>",
            message(
                "info",
                "You signed in a while ago: type your password again before changing your account.",
            ),
            html::csrf(&s.rec.csrf),
            hidden("next", next),
            input(
                "Password",
                "reauth-password",
                "password",
                "",
                "current-password"
            ),
        ),
    )
}

/// The session, CSRF and recent sign-in every change needs; else the answer to send.
fn for_change(pages: &Pages, req: &Req, body: &[u8]) -> Result<Form<Session>, Answer> {
    let f = pages.signed_in_form(req, body, "/account")?;
    if !pages.recent(&f.session) {
        return Err(reauth_page(&f.session, "/account", None));
    }
    Ok(f)
}

/// `POST /account/reauth`: checks the password again (counted like a sign-in).
pub(super) async fn reauth_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.signed_in_form(&req, &body, "/account")?;
    let src = pages.direct_source(&req, &body)?;
    let s = &f.session;
    let next = next_of(f.field("next"));
    let password = f.text("reauth-password");
    let checked = pages.api().check_credentials(&s.user.email, password, &src);
    Ok(match checked.await {
        Ok(u) if u.id == s.user.id => {
            match pages
                .api()
                .store()
                .touch_browser_session_auth(s.hash, crate::clock::now_secs())
                .await
            {
                Ok(()) => Answer::redirect(StatusCode::SEE_OTHER, &next),
                Err(e) => Answer::error("Confirm it is you", &e.into()),
            }
        }
        Ok(_) => reauth_page(s, &next, Some("wrong email or password")),
        Err(e) => {
            let mut a = reauth_page(s, &next, Some(&e.message)).retry_after(&e);
            if e.status == StatusCode::TOO_MANY_REQUESTS {
                a.status = e.status;
            }
            a
        }
    })
}

/// `POST /account/password`
pub(super) async fn password_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = for_change(&pages, &req, &body)?;
    let src = pages.direct_source(&req, &body)?;
    let s = &f.session;
    let (current, new) = (f.text("current-password"), f.text("new-password"));
    let changed = pages
        .api()
        .change_password(&s.user, current, new, &src, Some(s.hash));
    Ok(match changed.await {
        Ok(()) => {
            let _ = pages
                .api()
                .store()
                .touch_browser_session_auth(s.hash, crate::clock::now_secs())
                .await;
            account_with(
                &pages,
                s,
                StatusCode::OK,
                (
                    "info",
                    "Password changed. Every other session is signed out.",
                ),
            )
        }
        Err(e) => account_with(&pages, s, e.status, ("error", &e.message)).retry_after(&e),
    })
}

/// `POST /account/delete`
pub(super) async fn delete_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = for_change(&pages, &req, &body)?;
    let s = &f.session;
    if f.field("confirm") != Some("yes") {
        return Err(account_with(
            &pages,
            s,
            StatusCode::BAD_REQUEST,
            (
                "error",
                "Tick the box to confirm that the account should be deleted.",
            ),
        ));
    }
    Ok(match pages.api().delete_account(&s.user).await {
        Ok(()) => Answer::page(
            StatusCode::OK,
            "Account deleted",
            &message(
                "info",
                "Your account and everything stored for it are gone.",
            ),
        )
        .cookie(pages.clear_cookie(SESSION_COOKIE)),
        Err(e) => account_with(&pages, s, e.status, ("error", &e.message)),
    })
}

/// `POST /account/sessions/end`
pub(super) async fn end_session_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = for_change(&pages, &req, &body)?;
    let s = &f.session;
    let sid = f.text("sid");
    let ended = pages.api().oauth_end_session(&s.user.id, &sid).await;
    Ok(match ended {
        Ok(()) => account_with(&pages, s, StatusCode::OK, ("info", "Session ended.")),
        Err(e) => account_with(&pages, s, e.status, ("error", &e.message)),
    })
}

/// `POST /account/passkeys/delete`
pub(super) async fn passkey_delete_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = for_change(&pages, &req, &body)?;
    let s = &f.session;
    let Some(id) = f.field("id").and_then(|h| hex::decode(h).ok()) else {
        return Err(account_with(
            &pages,
            s,
            StatusCode::BAD_REQUEST,
            ("error", "No such passkey."),
        ));
    };
    let deleted = pages.api().store().delete_passkey(s.user.id, id).await;
    Ok(match deleted {
        Ok(true) => account_with(&pages, s, StatusCode::OK, ("info", "Passkey removed.")),
        Ok(false) => account_with(
            &pages,
            s,
            StatusCode::NOT_FOUND,
            ("error", "No such passkey."),
        ),
        Err(e) => {
            let e: crate::error::ApiError = e.into();
            account_with(&pages, s, e.status, ("error", &e.message))
        }
    })
}

/// `POST /logout`: ends this browser's session on the tracker.
pub(super) async fn logout_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let f = pages.form(&req, &body)?;
    if let Some(s) = f.session {
        if let Err(e) = pages.api().store().delete_browser_session(s.hash).await {
            return Err(Answer::error("Sign out", &e.into()));
        }
        tracing::info!(user = %s.user.id, "signed out of the tracker's pages");
    }
    Ok(pages.with_csrf(&req, None, |_| {
        Answer::redirect(StatusCode::SEE_OTHER, "/login").cookie(pages.clear_cookie(SESSION_COOKIE))
    }))
}

/// `POST /account/resend-verification`: the confirmation link again (limited like the JSON
/// route).
pub(super) async fn resend_post(pages: Pages, req: Req, body: Bytes) -> Handled {
    let s = pages.signed_in_form(&req, &body, "/account")?.session;
    let src = pages.direct_source(&req, &body)?;
    let email = crate::accounts::EmailRequest {
        email: s.user.email.clone(),
    };
    Ok(match pages.api().resend_verification(email, &src).await {
        Ok(()) => account_with(
            &pages,
            &s,
            StatusCode::OK,
            ("info", "We sent the confirmation link again."),
        ),
        Err(e) => account_with(&pages, &s, e.status, ("error", &e.message)).retry_after(&e),
    })
}
