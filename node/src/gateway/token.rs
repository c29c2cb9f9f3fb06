//! Playback tokens: what `/api/v1/movies/{id}/play` hands out and every `/hls/...` request
//! carries as `?token=`. A token says "user U (tier T) may play movie M until E, and its
//! premium renditions until P", signed by this node alone, so HLS requests need no JWT and
//! no tracker.
//!
//! Lifetime: a token lives at most `gateway.playback_token_ttl_secs` (default 2 h), checked
//! both when it is issued and when it is verified (a token issued before the setting was
//! lowered is refused once it would outlive the new setting). For a premium viewer, P is
//! the end of the premium period the access token names (`tier_until`) when that comes
//! before E: past P the token still plays the renditions every viewer gets, and the premium
//! ones answer 403 `premium_required` (the player asks `/play` again with a refreshed,
//! free, access token).
//!
//! The key is a 32-byte secret created on first start in `{data_dir}/playback.key` (mode
//! 0600, written to a temporary file and renamed) and never leaves the node; tokens are only
//! valid on the node that issued them (a browser streams from the node it asked).
//!
//! Wire format (version 2), base64url without padding:
//! `version(1) | tier(1) | exp(u64 BE) | premium_until(u64 BE) | sub_len(1) | sub |
//! movie_len(1) | movie | tag(32)` where `premium_until` is 0 for a free viewer and `tag` =
//! HMAC-SHA256(key, DOMAIN || everything before the tag). Parsing is size-limited, the tag
//! is compared in constant time and checked before the payload is read, and wrong movie,
//! expiry, forgery and malformation are distinct errors. Version 1 tokens (no premium end,
//! issued for up to 6 h) are refused as malformed: the player asks `/play` again.

use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use reelnet_proto::{Claims, MovieId, Tier};
use sha2::Sha256;

/// The playback key's file name in the data directory.
pub const KEY_FILE: &str = "playback.key";
const VERSION: u8 = 2;
/// Domain separation: the HMAC input starts with this, so the key signs nothing else.
const DOMAIN: &[u8] = b"reelnet playback token v1\0";
const TAG_LEN: usize = 32;
/// Longest user id a token can carry.
pub const MAX_SUBJECT_BYTES: usize = 128;
/// Longest token accepted (encoded), checked before decoding.
pub const MAX_PLAYBACK_TOKEN_BYTES: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// Why the playback key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot access playback key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("playback key file {path} is corrupt: expected 32 bytes, found {len}")]
    Corrupt { path: PathBuf, len: usize },
    #[error(transparent)]
    Exposed(#[from] reelnet_runtime::fs::PrivateFileError),
}

/// Why a playback token was refused (or could not be issued).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("playback token is malformed")]
    Malformed,
    #[error("playback token is not signed by this node")]
    Forged,
    #[error("playback token is for another movie")]
    WrongMovie,
    #[error("playback token has expired")]
    Expired,
    #[error("playback token outlives this node's playback token lifetime")]
    TooLong,
    #[error("user id is longer than {MAX_SUBJECT_BYTES} bytes")]
    SubjectTooLong,
}

/// What a valid playback token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackGrant {
    /// The user's id (`sub` of the access token it was issued for).
    pub user: String,
    pub movie: MovieId,
    /// The tier the token grants at the time it was verified: premium (the top renditions)
    /// only before `premium_until`.
    pub tier: Tier,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// When the premium renditions stop, unix seconds (never after `exp`; 0 for a free
    /// viewer).
    pub premium_until: u64,
}

/// Issues and verifies playback tokens with this node's secret.
pub struct PlaybackTokens {
    key: [u8; 32],
    ttl_secs: u64,
}

impl std::fmt::Debug for PlaybackTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackTokens")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl PlaybackTokens {
    /// Loads `{data_dir}/playback.key`, creating it (mode 0600) on first start.
    /// `ttl_secs` is the default lifetime used by [`PlaybackTokens::issue_default`].
    pub fn load_or_create(data_dir: &Path, ttl_secs: u64) -> Result<Self, KeyFileError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyFileError::Io {
            path: path.clone(),
            source,
        };
        // Refused (with the chmod that fixes it) when group or others may read it.
        let key = match reelnet_runtime::fs::read_private(&path)? {
            Some(bytes) => bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyFileError::Corrupt {
                    path: path.clone(),
                    len: bytes.len(),
                })?,
            None => {
                reelnet_runtime::fs::create_private_dir(data_dir).map_err(io)?;
                let key: [u8; 32] = rand::random();
                reelnet_runtime::fs::write_private(&path, &key).map_err(io)?;
                key
            }
        };
        Ok(Self::from_secret(key, ttl_secs))
    }

    /// Tokens keyed with `key` (tests, tools).
    pub fn from_secret(key: [u8; 32], ttl_secs: u64) -> Self {
        Self { key, ttl_secs }
    }

    /// The configured lifetime of a token, seconds (`gateway.playback_token_ttl_secs`).
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Issues a token for the user of `claims` and `movie`, valid for the configured TTL
    /// from now. Returns the token and its expiry (unix seconds).
    pub fn issue_default(
        &self,
        claims: &Claims,
        movie: &MovieId,
    ) -> Result<(String, u64), TokenError> {
        self.issue(claims, movie, self.ttl_secs)
    }

    /// Issues a token valid for `ttl_secs` from now (at most the configured TTL). Returns
    /// the token and its expiry.
    pub fn issue(
        &self,
        claims: &Claims,
        movie: &MovieId,
        ttl_secs: u64,
    ) -> Result<(String, u64), TokenError> {
        self.issue_at(claims, movie, crate::unix_now(), ttl_secs)
    }

    /// When the premium renditions of a token issued at `now` for `claims` and expiring at
    /// `exp` stop: `exp`, or the end of the premium period (`tier_until`) when that comes
    /// first. `None` for a free viewer and for a premium period that has ended already
    /// (the token is then a free one).
    pub fn premium_until(claims: &Claims, now: u64, exp: u64) -> Option<u64> {
        match claims.tier {
            Tier::Free => None,
            Tier::Premium => {
                Some(claims.tier_until.map_or(exp, |until| until.min(exp))).filter(|&p| p > now)
            }
        }
    }

    /// Issues a token valid for `ttl_secs` (at most the configured TTL) from `now` (unix
    /// seconds); for a premium viewer its premium renditions end with the premium period
    /// ([`Self::premium_until`]).
    pub fn issue_at(
        &self,
        claims: &Claims,
        movie: &MovieId,
        now: u64,
        ttl_secs: u64,
    ) -> Result<(String, u64), TokenError> {
        let sub = claims.sub.as_bytes();
        let movie_bytes = movie.as_str().as_bytes();
        let (Ok(sub_len), Ok(movie_len)) =
            (u8::try_from(sub.len()), u8::try_from(movie_bytes.len()))
        else {
            return Err(TokenError::SubjectTooLong);
        };
        if sub.len() > MAX_SUBJECT_BYTES {
            return Err(TokenError::SubjectTooLong);
        }
        let exp = now.saturating_add(ttl_secs.min(self.ttl_secs));
        let premium_until = Self::premium_until(claims, now, exp);
        let mut out = Vec::with_capacity(20 + sub.len() + movie_bytes.len() + TAG_LEN);
        out.push(VERSION);
        out.push(u8::from(premium_until.is_some()));
        let premium_until = premium_until.unwrap_or(0);
        out.extend_from_slice(&exp.to_be_bytes());
        out.extend_from_slice(&premium_until.to_be_bytes());
        out.push(sub_len);
        out.extend_from_slice(sub);
        out.push(movie_len);
        out.extend_from_slice(movie_bytes);
        let tag = self.mac(&out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok((b64.encode(out), exp))
    }

    /// Checks a token for `movie` at `now` (unix seconds) and returns what it grants then
    /// (a premium token past its premium end grants the free tier).
    pub fn verify(
        &self,
        token: &str,
        movie: &MovieId,
        now: u64,
    ) -> Result<PlaybackGrant, TokenError> {
        if token.is_empty() || token.len() > MAX_PLAYBACK_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes = b64
            .decode(token.as_bytes())
            .map_err(|_| TokenError::Malformed)?;
        // version, tier, exp, premium_until, sub_len, movie_len and the tag at least.
        if bytes.len() < 1 + 1 + 8 + 8 + 1 + 1 + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        self.mac(payload)
            .verify_slice(tag)
            .map_err(|_| TokenError::Forged)?;
        let mut grant = parse_payload(payload)?;
        if grant.movie != *movie {
            return Err(TokenError::WrongMovie);
        }
        if grant.exp <= now {
            return Err(TokenError::Expired);
        }
        // A minute of slack: a token issued a moment after `now` was read (another
        // request, another thread) is not too long.
        if grant.exp > now.saturating_add(self.ttl_secs).saturating_add(60) {
            return Err(TokenError::TooLong);
        }
        if grant.premium_until <= now {
            grant.tier = Tier::Free;
        }
        Ok(grant)
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC zero-pads keys shorter than the hash's 64-byte block (RFC 2104), so this is
        // HMAC with the 32-byte key, through the infallible fixed-size constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.key);
        let mut mac = <HmacSha256 as KeyInit>::new(&block.into());
        mac.update(DOMAIN);
        mac.update(payload);
        mac
    }
}

/// Reads an authenticated payload.
fn parse_payload(payload: &[u8]) -> Result<PlaybackGrant, TokenError> {
    let mut r = Reader(payload);
    if r.byte()? != VERSION {
        return Err(TokenError::Malformed);
    }
    let tier = match r.byte()? {
        0 => Tier::Free,
        1 => Tier::Premium,
        _ => return Err(TokenError::Malformed),
    };
    let exp = r.u64()?;
    let premium_until = r.u64()?;
    if (tier == Tier::Free) != (premium_until == 0) || premium_until > exp {
        return Err(TokenError::Malformed);
    }
    let n = usize::from(r.byte()?);
    let user = std::str::from_utf8(r.take(n)?).map_err(|_| TokenError::Malformed)?;
    let n = usize::from(r.byte()?);
    let movie = std::str::from_utf8(r.take(n)?).map_err(|_| TokenError::Malformed)?;
    if !r.0.is_empty() || user.len() > MAX_SUBJECT_BYTES {
        return Err(TokenError::Malformed);
    }
    let movie = MovieId::new(movie).map_err(|_| TokenError::Malformed)?;
    Ok(PlaybackGrant {
        user: user.to_owned(),
        movie,
        tier,
        exp,
        premium_until,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.0.len() < n {
            return Err(TokenError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, TokenError> {
        let bytes = self
            .take(8)?
            .try_into()
            .map_err(|_| TokenError::Malformed)?;
        Ok(u64::from_be_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use reelnet_proto::Role;

    const NOW: u64 = 1_764_000_000;

    fn claims(sub: &str, tier: Tier) -> Claims {
        Claims {
            sub: sub.into(),
            email: "a@b.c".into(),
            tier,
            tier_until: None,
            email_verified: true,
            role: Role::User,
            exp: NOW + 900,
            iat: NOW,
            iss: "reelnet-tracker".into(),
            aud: "reelnet".into(),
            jti: "j".into(),
            sid: None,
            scope: None,
        }
    }

    fn tokens() -> PlaybackTokens {
        PlaybackTokens::from_secret([42; 32], 21600)
    }

    #[test]
    fn issue_and_verify_round_trip() {
        let t = tokens();
        let movie = MovieId::from_tmdb(603);
        let (tok, exp) = t
            .issue_at(&claims("user-1", Tier::Premium), &movie, NOW, 3600)
            .unwrap();
        assert_eq!(exp, NOW + 3600);
        assert!(tok.len() < 200, "{}", tok.len());
        assert!(tok
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let grant = t.verify(&tok, &movie, NOW + 10).unwrap();
        assert_eq!(
            grant,
            PlaybackGrant {
                user: "user-1".into(),
                movie: movie.clone(),
                tier: Tier::Premium,
                exp,
                premium_until: exp,
            }
        );
        assert_eq!(
            t.verify(&tok, &MovieId::from_tmdb(604), NOW),
            Err(TokenError::WrongMovie)
        );
        assert_eq!(t.verify(&tok, &movie, exp), Err(TokenError::Expired));
        assert_eq!(t.verify(&tok, &movie, exp + 1), Err(TokenError::Expired));
        // Another node's key.
        let other = PlaybackTokens::from_secret([43; 32], 21600);
        assert_eq!(other.verify(&tok, &movie, NOW), Err(TokenError::Forged));
    }

    #[test]
    fn lifetime_is_capped_by_the_configured_ttl() {
        let t = PlaybackTokens::from_secret([42; 32], 7200);
        let movie = MovieId::from_tmdb(603);
        let c = claims("u", Tier::Free);
        // Issued for longer than configured: capped.
        let (tok, exp) = t.issue_at(&c, &movie, NOW, 86_400).unwrap();
        assert_eq!(exp, NOW + 7200);
        assert!(t.verify(&tok, &movie, NOW + 7199).is_ok());
        assert_eq!(t.verify(&tok, &movie, NOW + 7200), Err(TokenError::Expired));
        // A token from a node configured longer (or before the setting was lowered) is
        // refused while it would outlive this node's TTL, never accepted for longer.
        let long = PlaybackTokens::from_secret([42; 32], 86_400);
        let (tok, exp) = long.issue_at(&c, &movie, NOW, 86_400).unwrap();
        assert_eq!(exp, NOW + 86_400);
        assert_eq!(t.verify(&tok, &movie, NOW), Err(TokenError::TooLong));
        // (with a minute of slack for a token issued just after `now` was read)
        assert_eq!(t.verify(&tok, &movie, exp - 7261), Err(TokenError::TooLong));
        assert!(t.verify(&tok, &movie, exp - 7260).is_ok());
    }

    #[test]
    fn premium_ends_with_the_premium_period() {
        let t = PlaybackTokens::from_secret([42; 32], 7200);
        let movie = MovieId::from_tmdb(603);
        let mut c = claims("u", Tier::Premium);

        // The period ends in 10 minutes: premium until then, free after, expiry unchanged.
        c.tier_until = Some(NOW + 600);
        let (tok, exp) = t.issue_at(&c, &movie, NOW, 7200).unwrap();
        assert_eq!(exp, NOW + 7200);
        let g = t.verify(&tok, &movie, NOW + 599).unwrap();
        assert_eq!(
            (g.tier, g.premium_until, g.exp),
            (Tier::Premium, NOW + 600, exp)
        );
        let g = t.verify(&tok, &movie, NOW + 600).unwrap();
        assert_eq!((g.tier, g.premium_until), (Tier::Free, NOW + 600));
        assert_eq!(t.verify(&tok, &movie, exp), Err(TokenError::Expired));

        // The period outlasts the token, or has no end: premium for the token's life.
        for until in [Some(NOW + 86_400), None] {
            c.tier_until = until;
            let (tok, exp) = t.issue_at(&c, &movie, NOW, 7200).unwrap();
            let g = t.verify(&tok, &movie, exp - 1).unwrap();
            assert_eq!((g.tier, g.premium_until), (Tier::Premium, exp));
        }

        // The period has ended already: a free token.
        for until in [NOW, NOW - 1, 0] {
            c.tier_until = Some(until);
            assert_eq!(PlaybackTokens::premium_until(&c, NOW, NOW + 7200), None);
            let (tok, _) = t.issue_at(&c, &movie, NOW, 7200).unwrap();
            let g = t.verify(&tok, &movie, NOW).unwrap();
            assert_eq!((g.tier, g.premium_until), (Tier::Free, 0));
        }
        // Free viewers never get a premium end.
        assert_eq!(
            PlaybackTokens::premium_until(&claims("f", Tier::Free), NOW, NOW + 60),
            None
        );
    }

    #[test]
    fn version_1_tokens_and_inconsistent_payloads_are_refused() {
        let t = tokens();
        let movie = MovieId::from_tmdb(603);
        let sign = |payload: Vec<u8>| {
            let mut out = payload;
            let tag = t.mac(&out).finalize().into_bytes();
            out.extend_from_slice(&tag);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        };
        let payload = |version: u8, tier: u8, exp: u64, premium: Option<u64>| {
            let mut p = vec![version, tier];
            p.extend_from_slice(&exp.to_be_bytes());
            if let Some(premium) = premium {
                p.extend_from_slice(&premium.to_be_bytes());
            }
            p.push(1);
            p.push(b'u');
            p.push(8);
            p.extend_from_slice(b"tmdb-603");
            p
        };
        let exp = NOW + 60;
        // Well-formed v2, properly signed: accepted (the builder is right).
        assert!(t
            .verify(&sign(payload(2, 1, exp, Some(exp))), &movie, NOW)
            .is_ok());
        assert!(t
            .verify(&sign(payload(2, 0, exp, Some(0))), &movie, NOW)
            .is_ok());
        // A version 1 token (no premium end), even correctly signed.
        assert_eq!(
            t.verify(&sign(payload(1, 1, exp, None)), &movie, NOW),
            Err(TokenError::Malformed)
        );
        // Premium without a premium end, free with one, premium past the expiry.
        for bad in [
            payload(2, 1, exp, Some(0)),
            payload(2, 0, exp, Some(exp)),
            payload(2, 1, exp, Some(exp + 1)),
        ] {
            assert_eq!(
                t.verify(&sign(bad), &movie, NOW),
                Err(TokenError::Malformed)
            );
        }
    }

    #[test]
    fn mac_is_standard_hmac_sha256_with_the_32_byte_key() {
        let t = tokens();
        let mut reference = <HmacSha256 as Mac>::new_from_slice(&[42; 32]).unwrap();
        reference.update(DOMAIN);
        reference.update(b"payload");
        assert_eq!(
            t.mac(b"payload").finalize().into_bytes(),
            reference.finalize().into_bytes()
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = tokens();
        let movie = MovieId::from_tmdb(603);
        for bad in ["", "!!!", "AAAA", &"A".repeat(MAX_PLAYBACK_TOKEN_BYTES + 1)] {
            assert_eq!(
                t.verify(bad, &movie, NOW),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        // A long enough string of valid base64 is a forgery, not a crash.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let junk = b64.encode([0u8; 80]);
        assert_eq!(t.verify(&junk, &movie, NOW), Err(TokenError::Forged));
    }

    #[test]
    fn every_byte_flip_is_rejected() {
        let t = tokens();
        let movie = MovieId::from_tmdb(603);
        let (tok, _) = t
            .issue_at(&claims("u", Tier::Free), &movie, NOW, 3600)
            .unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let raw = b64.decode(&tok).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut m = raw.clone();
                m[i] ^= 1 << bit;
                let forged = b64.encode(&m);
                assert_eq!(
                    t.verify(&forged, &movie, NOW),
                    Err(TokenError::Forged),
                    "byte {i} bit {bit}"
                );
            }
        }
        // Flipping characters of the encoded form: never accepted.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ ";
        for i in 0..tok.len() {
            for &c in alphabet {
                let mut s = tok.clone().into_bytes();
                if s[i] == c {
                    continue;
                }
                s[i] = c;
                let s = String::from_utf8(s).unwrap();
                assert!(
                    t.verify(&s, &movie, NOW).is_err(),
                    "char {i} -> {}",
                    c as char
                );
            }
        }
        // Truncations and extensions.
        for n in 0..tok.len() {
            assert!(t.verify(&tok[..n], &movie, NOW).is_err(), "prefix {n}");
        }
        assert!(t.verify(&format!("{tok}A"), &movie, NOW).is_err());
        assert!(t.verify(&format!("{tok}AAAA"), &movie, NOW).is_err());
    }

    #[test]
    fn tokens_differ_per_user_movie_and_tier() {
        let t = tokens();
        let m1 = MovieId::from_tmdb(1);
        let m2 = MovieId::from_tmdb(2);
        let a = t
            .issue_at(&claims("a", Tier::Free), &m1, NOW, 60)
            .unwrap()
            .0;
        let b = t
            .issue_at(&claims("b", Tier::Free), &m1, NOW, 60)
            .unwrap()
            .0;
        let c = t
            .issue_at(&claims("a", Tier::Premium), &m1, NOW, 60)
            .unwrap()
            .0;
        let d = t
            .issue_at(&claims("a", Tier::Free), &m2, NOW, 60)
            .unwrap()
            .0;
        let all = [&a, &b, &c, &d];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(t.verify(&b, &m1, NOW).unwrap().user, "b");
        assert_eq!(t.verify(&c, &m1, NOW).unwrap().tier, Tier::Premium);
    }

    #[test]
    fn long_subjects_are_refused_at_issue() {
        let t = tokens();
        let long = "x".repeat(MAX_SUBJECT_BYTES + 1);
        assert_eq!(
            t.issue_at(&claims(&long, Tier::Free), &MovieId::from_tmdb(1), NOW, 60),
            Err(TokenError::SubjectTooLong)
        );
        let max = "x".repeat(MAX_SUBJECT_BYTES);
        let (tok, _) = t
            .issue_at(&claims(&max, Tier::Free), &MovieId::from_tmdb(1), NOW, 60)
            .unwrap();
        assert!(tok.len() <= MAX_PLAYBACK_TOKEN_BYTES);
        assert!(t.verify(&tok, &MovieId::from_tmdb(1), NOW).is_ok());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = PlaybackTokens::load_or_create(dir.path(), 60).unwrap();
        let b = PlaybackTokens::load_or_create(dir.path(), 60).unwrap();
        assert_eq!(a.key, b.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let movie = MovieId::from_tmdb(9);
        let (tok, _) = a
            .issue_at(&claims("u", Tier::Free), &movie, NOW, 60)
            .unwrap();
        assert!(b.verify(&tok, &movie, NOW).is_ok());
        reelnet_runtime::fs::write_private(&dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            PlaybackTokens::load_or_create(dir.path(), 60),
            Err(KeyFileError::Corrupt { len: 5, .. })
        ));
    }
}
