//! A small browser for the tracker's pages: a reqwest client that follows no redirects,
//! keeps cookies by hand (names, values, and the attributes they were set with), sends
//! `Origin` like a browser does on POST, and reads forms' hidden fields.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;

/// One answer.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    /// The raw `Set-Cookie` lines.
    pub set_cookies: Vec<String>,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// The value of the form field `name` (first `name="…" value="…"` on the page,
    /// unescaped).
    pub fn field(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(unescape(&self.body[start..end]))
    }

    /// The page's CSRF token.
    pub fn csrf(&self) -> String {
        self.field("csrf")
            .unwrap_or_else(|| panic!("no csrf field on {}: {}", self.status, self.body))
    }

    /// Whether an element with this id is on the page.
    /// The OAuth consent form's fields as the page rendered them, plus the decision
    /// (what a browser submits when the viewer clicks allow or deny).
    pub fn consent_fields(&self, decision: &str) -> Vec<(String, String)> {
        let mut out = vec![("decision".to_owned(), decision.to_owned())];
        for name in [
            "csrf",
            "response_type",
            "client_id",
            "redirect_uri",
            "state",
            "code_challenge",
            "code_challenge_method",
            "scope",
        ] {
            if let Some(v) = self.field(name) {
                out.push((name.to_owned(), v));
            }
        }
        out
    }

    pub fn has_id(&self, id: &str) -> bool {
        self.body.contains(&format!("id=\"{id}\""))
    }

    /// The `Set-Cookie` line for `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .cloned()
    }
}

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A browser with its own cookie jar.
pub struct Browser {
    pub base: String,
    /// The `Origin` its POSTs carry (the tracker's `public_url`).
    pub origin: String,
    http: reqwest::Client,
    jar: Mutex<HashMap<String, String>>,
}

/// What a POST carries besides its form.
#[derive(Clone, Default)]
pub struct Headers {
    /// `None`: the browser's own origin.
    pub origin: Option<Option<String>>,
    pub referer: Option<String>,
    pub fetch_site: Option<String>,
}

impl Headers {
    /// A POST with this `Origin` (`None`: no Origin header at all).
    pub fn origin(o: Option<&str>) -> Self {
        Self {
            origin: Some(o.map(str::to_owned)),
            ..Self::default()
        }
    }
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self::at(base, base)
    }

    /// A browser talking to `base` that believes it is on `origin` (a tracker whose
    /// `public_url` is not its listening address).
    pub fn at(base: &str, origin: &str) -> Self {
        Self {
            base: base.to_owned(),
            origin: origin.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Mutex::new(HashMap::new()),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    pub fn set(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    fn cookie_header(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn finish(&self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            let gone = c.contains("Max-Age=0");
            let mut jar = self.jar.lock().unwrap();
            if gone {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status,
            headers,
            body: r.text().await.unwrap(),
            set_cookies,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let r = self
            .http
            .get(self.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    /// A form POST from the tracker's own origin (as a browser sends it).
    /// POSTs owned form fields.
    pub async fn post_owned(&self, path: &str, fields: &[(String, String)]) -> Page {
        let f: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post(path, &f).await
    }

    /// Answers the consent page `consent` with `decision` ("allow" or "deny").
    pub async fn consent(&self, consent: &Page, decision: &str) -> Page {
        self.post_owned("/oauth/authorize", &consent.consent_fields(decision))
            .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, Headers::default()).await
    }

    pub async fn post_with(&self, path: &str, form: &[(&str, &str)], h: Headers) -> Page {
        let mut req = self
            .http
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        match h.origin {
            None => req = req.header("origin", self.origin.clone()),
            Some(Some(o)) => req = req.header("origin", o),
            Some(None) => {}
        }
        if let Some(r) = h.referer {
            req = req.header("referer", r);
        }
        if let Some(s) = h.fetch_site {
            req = req.header("sec-fetch-site", s);
        }
        self.finish(req.send().await.unwrap()).await
    }

    /// A JSON POST from the tracker's origin with the CSRF header (the passkey script).
    pub async fn post_json(
        &self,
        path: &str,
        csrf: Option<&str>,
        body: &serde_json::Value,
    ) -> Page {
        let mut req = self
            .http
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .header("origin", self.origin.clone())
            .json(body);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        self.finish(req.send().await.unwrap()).await
    }

    /// Signs in through `/login`: the answer to the POST.
    pub async fn sign_in(&self, email: &str, password: &str, next: &str) -> Page {
        let login = self.get(&format!("/login?next={}", urlencode(next))).await;
        assert_eq!(login.status, 200, "{}", login.body);
        let csrf = login.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
                ("next", next),
            ],
        )
        .await
    }
}

pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
}

/// The path (and query) of a tracker URL.
pub fn path_of(url: &str, base: &str) -> String {
    url.strip_prefix(base).unwrap_or(url).to_owned()
}
