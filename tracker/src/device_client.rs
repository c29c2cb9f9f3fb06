//! `reelnet-tracker device-login`: the device authorization grant (RFC 8628) from the
//! command line, for scripts, TVs and anything without a browser. It asks the tracker at
//! `url` for a device code, tells the person to open the tracker's device page and type the
//! short code, polls the token endpoint at the interval the tracker gives (slower when told
//! `slow_down`), and prints the token answer as one JSON line on stdout.
//!
//! The password is typed only on the tracker's page, never here. The token has the network
//! as audience (or the node named by `--resource`) and no account scope: it can read and
//! write the person's lists, not change the account.

use std::time::Duration;

use reelnet_proto::oauth::{
    OauthError, DEVICE_AUTHORIZATION_PATH, GRANT_DEVICE, PUBLIC_CLIENT_ID, TOKEN_PATH,
};
use serde::Deserialize;

/// Largest answer read from the tracker.
const MAX_ANSWER_BYTES: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum DeviceLoginError {
    #[error("cannot reach the tracker: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the tracker refused: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    #[error("the tracker's answer is not valid: {0}")]
    Malformed(String),
    #[error("the code expired before anyone allowed it")]
    Expired,
}

#[derive(Debug, Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default = "default_interval")]
    interval: u64,
}

fn default_interval() -> u64 {
    5
}

async fn read_json(res: reqwest::Response) -> Result<(u16, serde_json::Value), DeviceLoginError> {
    let status = res.status().as_u16();
    let bytes = res.bytes().await?;
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(DeviceLoginError::Malformed("answer too large".to_owned()));
    }
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| DeviceLoginError::Malformed(format!("{status}: {e}")))?;
    Ok((status, value))
}

fn refused(value: serde_json::Value) -> DeviceLoginError {
    match serde_json::from_value::<OauthError>(value.clone()) {
        Ok(e) => DeviceLoginError::Refused {
            error: e.error,
            description: e.error_description,
        },
        Err(_) => DeviceLoginError::Malformed(value.to_string()),
    }
}

/// Runs the device grant against the tracker at `url`; `tell` is called once with what to
/// show the person. Returns the token endpoint's JSON answer.
pub async fn device_login(
    url: &str,
    device_name: &str,
    resource: Option<&str>,
    tell: impl FnOnce(&str),
) -> Result<serde_json::Value, DeviceLoginError> {
    let base = url.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut form = vec![
        ("client_id", PUBLIC_CLIENT_ID),
        ("device_name", device_name),
    ];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let res = client
        .post(format!("{base}{DEVICE_AUTHORIZATION_PATH}"))
        .form(&form)
        .send()
        .await?;
    let (status, value) = read_json(res).await?;
    if status != 200 {
        return Err(refused(value));
    }
    let auth: DeviceAuthorization =
        serde_json::from_value(value).map_err(|e| DeviceLoginError::Malformed(e.to_string()))?;
    tell(&format!(
        "To sign in on this device, open {} and enter the code {}{}",
        auth.verification_uri,
        auth.user_code,
        auth.verification_uri_complete
            .as_deref()
            .map(|u| format!("\n(or open {u})"))
            .unwrap_or_default()
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(auth.expires_in.min(3600));
    let mut interval = auth.interval.clamp(1, 60);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if tokio::time::Instant::now() >= deadline {
            return Err(DeviceLoginError::Expired);
        }
        let res = client
            .post(format!("{base}{TOKEN_PATH}"))
            .form(&[
                ("grant_type", GRANT_DEVICE),
                ("device_code", auth.device_code.as_str()),
                ("client_id", PUBLIC_CLIENT_ID),
            ])
            .send()
            .await?;
        let (status, value) = read_json(res).await?;
        if status == 200 {
            return Ok(value);
        }
        match value.get("error").and_then(|e| e.as_str()) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval = (interval + 5).min(60),
            Some("expired_token") => return Err(DeviceLoginError::Expired),
            _ => return Err(refused(value)),
        }
    }
}
