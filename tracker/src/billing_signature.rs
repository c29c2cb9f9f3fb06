//! The billing webhook's signature: the shared secret (configured, or made once and kept in
//! the data directory), and HMAC-SHA256 over `timestamp + "." + raw body` as a payment
//! provider sends it in `Reelnet-Signature: t=<unix seconds>,v1=<hex>`. It sits below the
//! `Api` facade (no `Api` and no store here), so the facade loads the secret without
//! importing [`crate::billing`].

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;

/// The header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "reelnet-signature";

/// Why the webhook secret could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("billing webhook secret {path}: {source}")]
pub struct SecretError {
    pub path: String,
    pub source: std::io::Error,
}

/// The file in the data directory that keeps a generated webhook secret.
pub const SECRET_FILE: &str = "billing_webhook_secret";

/// The webhook secret: `billing.webhook_secret` when set, else the one kept in
/// `<data_dir>/billing_webhook_secret` (made on first start, mode 0600).
pub fn webhook_secret(configured: &str, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    let err = |source| SecretError {
        path: path.display().to_string(),
        source,
    };
    // Refused (with the chmod to run) when group or others may read it.
    match reelnet_runtime::fs::read_private(&path) {
        Ok(Some(bytes)) => {
            let text = String::from_utf8_lossy(&bytes);
            if !text.trim().is_empty() {
                return Ok(text.trim().as_bytes().to_vec());
            }
        }
        Ok(None) => {}
        Err(e) => return Err(err(e.into())),
    }
    reelnet_runtime::fs::create_private_dir(data_dir).map_err(err)?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    reelnet_runtime::fs::write_private(&path, secret.as_bytes()).map_err(err)?;
    tracing::info!(path = %path.display(), "generated the billing webhook secret");
    Ok(secret.into_bytes())
}

/// The signature header value for `body` at `timestamp` (what a provider sends).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut m = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return Vec::new(),
    };
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn bad_signature(message: &str) -> ApiError {
    ApiError::bad_request("bad_signature", message)
}

/// Checks a `Reelnet-Signature` header against the raw body (constant-time compare of
/// every `v1=` given, timestamp within `tolerance` of `now`).
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: u64,
    tolerance: u64,
) -> Result<(), ApiError> {
    let header = header.ok_or_else(|| bad_signature("missing Reelnet-Signature header"))?;
    let mut timestamp = None;
    let mut macs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<u64>().ok(),
            Some(("v1", v)) => macs.push(hex::decode(v).unwrap_or_default()),
            _ => {}
        }
    }
    let timestamp =
        timestamp.ok_or_else(|| bad_signature("signature header has no valid t=timestamp"))?;
    if macs.is_empty() {
        return Err(bad_signature("signature header has no v1= signature"));
    }
    if now.abs_diff(timestamp) > tolerance {
        return Err(ApiError::bad_request(
            "stale_signature",
            format!("signature timestamp is more than {tolerance} s away from now (replay?)"),
        ));
    }
    for candidate in &macs {
        let mut m = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| ApiError::internal("bad HMAC key"))?;
        m.update(timestamp.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        if m.verify_slice(candidate).is_ok() {
            return Ok(());
        }
    }
    Err(bad_signature("signature does not match"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(b"s3cret", 1000, body);
        verify(b"s3cret", Some(&header), body, 1100, 300).unwrap();
        assert_eq!(
            verify(b"other", Some(&header), body, 1100, 300)
                .unwrap_err()
                .code,
            "bad_signature"
        );
        assert_eq!(
            verify(b"s3cret", Some(&header), b"{}", 1100, 300)
                .unwrap_err()
                .code,
            "bad_signature"
        );
        assert_eq!(
            verify(b"s3cret", Some(&header), body, 1400, 300)
                .unwrap_err()
                .code,
            "stale_signature"
        );
        assert!(verify(b"s3cret", None, body, 1000, 300).is_err());
        assert!(verify(b"s3cret", Some("t=1000"), body, 1000, 300).is_err());
        assert!(verify(b"s3cret", Some("v1=00"), body, 1000, 300).is_err());
        // A second, matching signature (key rotation at the provider) is accepted.
        let two = format!("{header},v1=abcd");
        verify(b"s3cret", Some(&two), body, 1000, 300).unwrap();
    }
}
