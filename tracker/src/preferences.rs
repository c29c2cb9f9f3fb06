//! A user's playback preferences: preferred audio and subtitle languages, whether subtitles
//! start on, off or forced-only, and how captions look. The web player applies them when a
//! movie starts (in a watch-party room too, each member their own); the tracker only keeps
//! and validates them.

use reelnet_proto::Claims;

use crate::api::Api;
use crate::error::ApiError;
use crate::store::Preferences;

/// Longest language tag accepted (BCP 47 tags in practice stay far below this).
pub const MAX_LANGUAGE_LEN: usize = 35;

/// Whether `tag` looks like a BCP 47 language tag: 1 to [`MAX_LANGUAGE_LEN`] characters,
/// subtags of 1 to 8 ASCII letters or digits separated by single hyphens, the first one
/// 2 to 8 letters (`de`, `en-US`, `zh-Hant-TW`, `deu`). Not a full BCP 47 parser: the
/// tag only has to be safe to store and to compare with a track's `LANGUAGE`.
pub fn valid_language(tag: &str) -> bool {
    if tag.is_empty() || tag.len() > MAX_LANGUAGE_LEN {
        return false;
    }
    let mut subtags = tag.split('-');
    let first_ok = subtags
        .next()
        .is_some_and(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && subtags
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn check(prefs: &Preferences) -> Result<(), ApiError> {
    for (field, value) in [
        ("audio_language", &prefs.audio_language),
        ("subtitle_language", &prefs.subtitle_language),
    ] {
        if let Some(tag) = value {
            if !valid_language(tag) {
                return Err(ApiError::bad_request(
                    "invalid_preferences",
                    format!(
                        "{field} must be a language tag like `de` or `en-US` (at most \
                         {MAX_LANGUAGE_LEN} letters, digits and hyphens), or null"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The body of `PUT me/preferences` as [`Preferences`]: a JSON object only (serde would
/// also read a struct from an array of its fields in order), fields left out take their
/// defaults, unknown fields or values are 400 `invalid_json`.
pub fn parse_body(
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<Preferences, ApiError> {
    serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))
}

impl Api {
    /// `GET me/preferences`: what the user saved, or the defaults (no languages, subtitles
    /// off, medium captions on a background).
    pub fn preferences(&self, claims: &Claims) -> Result<Preferences, ApiError> {
        let user = self.user(claims)?;
        Ok(self.store().preferences(&user.id)?.unwrap_or_default())
    }

    /// `PUT me/preferences`: replaces them (fields left out take their defaults); answers
    /// what is stored, once it is durable.
    pub async fn put_preferences(
        &self,
        claims: &Claims,
        prefs: Preferences,
    ) -> Result<Preferences, ApiError> {
        let user = self.user(claims)?;
        check(&prefs)?;
        self.store().put_preferences(user.id, prefs.clone()).await?;
        Ok(prefs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in ["de", "en-US", "zh-Hant-TW", "deu", "es-419", "sgn-BE-FR"] {
            assert!(valid_language(ok), "{ok}");
        }
        let long = "a".repeat(36);
        for bad in [
            "",
            "d",
            "-de",
            "de-",
            "de--at",
            "de_AT",
            "1de",
            "de AT",
            "dé",
            "abcdefghi",
            &long,
            "en-US<script>",
        ] {
            assert!(!valid_language(bad), "{bad}");
        }
    }
}
