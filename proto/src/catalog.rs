//! Catalog records: a node's signed statement of what it holds and where to reach it.
//!
//! "I am node N; I hold these manifests (fully, or these segment ranges); my QUIC segment
//! service is at X; my gateway is at Y." Records carry a `seq` (a newer record from the same
//! node replaces an older one) and an expiry (a node that stops republishing drops out).
//! They are gossiped and fetched from peers, so [`SignedCatalogRecord::verify`] checks the
//! signature, the time window and every bound before anything reads the record.

use std::net::SocketAddr;

use ed25519_dalek::{Signature, SigningKey};
use serde::{Deserialize, Serialize};

use crate::codec::{self, MAX_CATALOG_RECORD_BYTES, MAX_SIGNED_CATALOG_RECORD_BYTES};
use crate::error::{DecodeError, ProtoError};
use crate::ids::{ManifestId, MovieId, NodeId};
use crate::sign::{self, CATALOG_RECORD_CONTEXT};

/// Most manifests in one record.
pub const MAX_HELD: usize = 1024;
/// Most segment ranges over all held manifests.
pub const MAX_TOTAL_RANGES: usize = 8192;
/// Longest `quic_addr` string.
pub const MAX_QUIC_ADDR_LEN: usize = 64;
/// Longest `gateway_url`.
pub const MAX_GATEWAY_URL_LEN: usize = 2048;
/// Longest allowed lifetime (`expires_at - issued_at`): 24 hours. A record cannot claim
/// to stay valid for longer; nodes republish well before expiry.
pub const MAX_RECORD_TTL_SECS: u64 = 24 * 3600;
/// The clock skew tolerated between any two machines of a network (5 minutes; the one
/// constant, [`crate::membership::MAX_CLOCK_SKEW_SECS`], re-exported here). A record may
/// be issued this far in the future, and is still accepted this long after its
/// `expires_at` (a receiver ahead of the sender must not drop it early; how long it then
/// lives is its lifetime counted from receipt, see `docs/clock-skew.md`).
pub use crate::membership::{MAX_CLOCK_SKEW_SECS, SKEW_TOLERANCE_SECS};

/// A half-open range `[start, end)` of media segment indices of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentRange {
    /// Track index in the manifest.
    pub track: u16,
    /// First segment index held.
    pub start: u32,
    /// One past the last segment index held; `start < end`.
    pub end: u32,
}

impl SegmentRange {
    /// True if this range covers segment `index` of `track`.
    pub fn contains(&self, track: u16, index: u32) -> bool {
        self.track == track && self.start <= index && index < self.end
    }
}

/// One manifest a node holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Held {
    /// Which manifest.
    pub manifest: ManifestId,
    /// Its movie, so the catalog can be searched without fetching every manifest.
    pub movie: MovieId,
    /// The node holds every segment (then `ranges` is empty).
    pub complete: bool,
    /// The segments held when not complete.
    pub ranges: Vec<SegmentRange>,
}

impl Held {
    /// True if the node claims segment `index` of `track` (init segments are held whenever
    /// any media segment of their track is).
    pub fn has_segment(&self, track: u16, index: u32) -> bool {
        self.complete || self.ranges.iter().any(|r| r.contains(track, index))
    }
}

/// A node's catalog record. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CatalogRecord {
    /// The node; the record must be signed by its key.
    pub node: NodeId,
    /// The QUIC segment service's socket address, e.g. `192.0.2.1:7400` or `[::1]:7400`.
    pub quic_addr: String,
    /// The gateway's origin: `http://` or `https://`, host, optional port, nothing else (no
    /// path, query, fragment or userinfo; see [`gateway_origin`]). Validation refuses
    /// anything else, so a record from gossip or sync cannot point other nodes' fetches
    /// (images) at a path or another service.
    pub gateway_url: String,
    /// What the node holds; no manifest twice.
    pub held: Vec<Held>,
    /// Grows with every record the node issues.
    pub seq: u64,
    /// Unix seconds when issued.
    pub issued_at: u64,
    /// Unix seconds after which the record is void.
    pub expires_at: u64,
    /// Whether the node takes a share of the library under placement (stores replicas).
    /// `false` for an edge node that only caches what its own viewers watch.
    pub replica: bool,
    /// The node's membership certificate
    /// ([`SignedCertificate`](crate::membership::SignedCertificate) wire bytes): members
    /// accept a record only when it is valid for `node` in their network.
    pub certificate: Vec<u8>,
}

impl CatalogRecord {
    /// True if `self` supersedes `other`: same node, higher `seq`.
    pub fn is_newer_than(&self, other: &CatalogRecord) -> bool {
        self.node == other.node && self.seq > other.seq
    }

    /// The parsed QUIC address.
    pub fn quic_socket_addr(&self) -> Result<SocketAddr, ProtoError> {
        self.quic_addr.parse().map_err(|_| {
            ProtoError::invalid(
                "catalog record",
                format!(
                    "quic_addr {:?} is not a socket address",
                    self.quic_addr.chars().take(80).collect::<String>()
                ),
            )
        })
    }

    /// The entry for `manifest`, if held.
    pub fn find(&self, manifest: &ManifestId) -> Option<&Held> {
        self.held.iter().find(|h| h.manifest == *manifest)
    }

    /// Checks bounds and formats (not time; see [`CatalogRecord::check_time`]).
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| Err(ProtoError::invalid("catalog record", reason));
        if self.quic_addr.len() > MAX_QUIC_ADDR_LEN {
            return bad(format!("quic_addr longer than {MAX_QUIC_ADDR_LEN} bytes"));
        }
        let addr = self.quic_socket_addr()?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return bad(format!(
                "quic_addr {addr} is not reachable (unspecified address or port 0); advertise the address peers should dial"
            ));
        }
        check_gateway_url(&self.gateway_url)?;
        if self.held.len() > MAX_HELD {
            return bad(format!(
                "{} held manifests (max {MAX_HELD})",
                self.held.len()
            ));
        }
        if self.certificate.len() > crate::membership::MAX_SIGNED_CERTIFICATE_BYTES {
            return bad(format!(
                "certificate of {} bytes (max {})",
                self.certificate.len(),
                crate::membership::MAX_SIGNED_CERTIFICATE_BYTES
            ));
        }
        let ranges: usize = self.held.iter().map(|h| h.ranges.len()).sum();
        if ranges > MAX_TOTAL_RANGES {
            return bad(format!("{ranges} segment ranges (max {MAX_TOTAL_RANGES})"));
        }
        let mut ids: Vec<&ManifestId> = self.held.iter().map(|h| &h.manifest).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("manifest {} is listed twice", w[0]));
        }
        for h in &self.held {
            if h.complete && !h.ranges.is_empty() {
                return bad(format!(
                    "manifest {} is complete but also lists ranges",
                    h.manifest
                ));
            }
            if let Some(r) = h.ranges.iter().find(|r| r.start >= r.end) {
                return bad(format!(
                    "manifest {}: empty range {}..{} on track {}",
                    h.manifest, r.start, r.end, r.track
                ));
            }
        }
        if self.issued_at > self.expires_at {
            return bad(format!(
                "issued_at {} is after expires_at {}",
                self.issued_at, self.expires_at
            ));
        }
        if self.expires_at - self.issued_at > MAX_RECORD_TTL_SECS {
            return bad(format!(
                "lifetime {} s exceeds {MAX_RECORD_TTL_SECS} s",
                self.expires_at - self.issued_at
            ));
        }
        Ok(())
    }

    /// Checks the record is live at `now` (unix seconds) on a clock up to
    /// [`MAX_CLOCK_SKEW_SECS`] off the sender's: not expired more than
    /// [`SKEW_TOLERANCE_SECS`] ago, and not issued more than that far in the future.
    pub fn check_time(&self, now: u64) -> Result<(), ProtoError> {
        if self.expires_at.saturating_add(SKEW_TOLERANCE_SECS) <= now {
            return Err(ProtoError::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        if self.issued_at > now.saturating_add(SKEW_TOLERANCE_SECS) {
            return Err(ProtoError::NotYetValid {
                issued_at: self.issued_at,
                now,
            });
        }
        Ok(())
    }
}

fn check_gateway_url(url: &str) -> Result<(), ProtoError> {
    gateway_origin(url).map(drop).map_err(|reason| {
        ProtoError::invalid(
            "catalog record",
            format!(
                "gateway_url {:?} {reason}",
                url.chars().take(80).collect::<String>()
            ),
        )
    })
}

/// Longest host name in a `gateway_url` (DNS names are at most 253 bytes).
pub const MAX_GATEWAY_HOST_LEN: usize = 253;

/// The origin a `gateway_url` names, without a trailing `/`: `Ok("https://host:port")`.
///
/// A gateway URL is an origin only: `http://` or `https://` (lower case), a host (a DNS
/// name of letters, digits, `-`, `_` and `.`, an IPv4 address, or an IPv6 address in
/// brackets), an optional port (1 to 65535), and at most a bare `/` after it. No path,
/// query, fragment, userinfo (`user@`), percent-encoding or backslash: other nodes build
/// URLs from it (`{origin}/images/{hash}`), and a record must not be able to steer them
/// anywhere but that node's gateway. The error says what is wrong.
pub fn gateway_origin(url: &str) -> Result<&str, String> {
    if url.len() > MAX_GATEWAY_URL_LEN {
        return Err(format!("is longer than {MAX_GATEWAY_URL_LEN} bytes"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_owned());
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err("must start with http:// or https://".to_owned());
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(bad) = authority
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '@' | '\\' | '%'))
    {
        return Err(format!(
            "must be an origin (http(s)://host[:port]) without a path, query, fragment or \
             userinfo (found {bad:?})"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((ip, after)) = v6.split_once(']') else {
            return Err("has an unclosed [ in its host".to_owned());
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "has {ip:?} in brackets, which is not an IPv6 address"
            ));
        }
        match after {
            "" => (ip, None),
            p => match p.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return Err("has something other than :port after its host".to_owned()),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    if !authority.starts_with('[') {
        let name_ok = host.len() <= MAX_GATEWAY_HOST_LEN
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !name_ok {
            return Err(format!(
                "has host {:?}: a host is a DNS name (letters, digits, -, _, dots between non-empty labels), an IPv4 address or [IPv6]",
                host.chars().take(80).collect::<String>()
            ));
        }
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !ok {
            return Err(format!("has port {port:?}: a port is 1 to 65535"));
        }
    }
    Ok(url.strip_suffix('/').unwrap_or(url))
}

/// A catalog record as it travels: canonical record bytes plus the node's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCatalogRecord {
    record_bytes: Vec<u8>,
    signature: Signature,
}

impl SignedCatalogRecord {
    /// Validates, encodes and signs `record`. `key` must be `record.node`'s key. Time is not
    /// checked here (proto has no clock); set `issued_at`/`expires_at` from your own.
    pub fn sign(record: &CatalogRecord, key: &SigningKey) -> Result<Self, ProtoError> {
        sign::check_signer(key, &record.node)?;
        record.validate()?;
        let record_bytes = codec::encode::<_, MAX_CATALOG_RECORD_BYTES>(record)?;
        let signature = sign::sign(key, CATALOG_RECORD_CONTEXT, &record_bytes);
        Ok(Self {
            record_bytes,
            signature,
        })
    }

    /// Decodes the record (with limits), validates it, checks it is live at `now` (unix
    /// seconds) and checks the signature against its `node`.
    pub fn verify(&self, now: u64) -> Result<CatalogRecord, ProtoError> {
        let record: CatalogRecord =
            codec::decode::<_, MAX_CATALOG_RECORD_BYTES>(&self.record_bytes)?;
        record.validate()?;
        record.check_time(now)?;
        sign::verify(
            &record.node,
            CATALOG_RECORD_CONTEXT,
            &self.record_bytes,
            &self.signature,
        )?;
        Ok(record)
    }

    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        sign::encode_envelope(&self.record_bytes, &self.signature)
    }

    /// Parses the wire encoding (at most [`MAX_SIGNED_CATALOG_RECORD_BYTES`]). Does not
    /// verify; call [`SignedCatalogRecord::verify`] next.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (record_bytes, signature) = sign::decode_envelope::<MAX_SIGNED_CATALOG_RECORD_BYTES>(
            bytes,
            MAX_CATALOG_RECORD_BYTES,
        )?;
        Ok(Self {
            record_bytes,
            signature,
        })
    }

    /// The signed (unverified) record bytes.
    pub fn record_bytes(&self) -> &[u8] {
        &self.record_bytes
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_are_origins() {
        for (url, origin) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://movies.example.org", "https://movies.example.org"),
            ("https://movies.example.org/", "https://movies.example.org"),
            ("http://[::1]:8081", "http://[::1]:8081"),
            ("http://[2001:db8::7]/", "http://[2001:db8::7]"),
            ("http://node_1.lan:65535", "http://node_1.lan:65535"),
        ] {
            assert_eq!(gateway_origin(url), Ok(origin), "{url}");
            assert!(check_gateway_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn gateway_urls_with_more_than_an_origin_are_refused() {
        for url in [
            // path, query, fragment
            "http://127.0.0.1:8080/api",
            "http://127.0.0.1:8080//",
            "http://a.example/images/",
            "http://a.example?x=1",
            "http://a.example/?x=1",
            "http://a.example#frag",
            // userinfo
            "http://user@a.example",
            "http://user:pw@a.example:80",
            "http://a.example@127.0.0.1",
            // encodings and odd hosts
            "http://a%2eexample",
            "http://a.example\\@evil",
            "http://",
            "http:///x",
            "http://:80",
            "http://a..example",
            "http://.a.example",
            "http://a.example:",
            "http://a.example:0",
            "http://a.example:65536",
            "http://a.example:+80",
            "http://a.example:80:81",
            "http://[::1",
            "http://[zz::1]:80",
            "http://[::1]x",
            "http://a b",
            // schemes
            "HTTP://a.example",
            "ftp://a.example",
            "file:///etc/passwd",
            "a.example",
        ] {
            assert!(gateway_origin(url).is_err(), "{url} accepted");
            let err = check_gateway_url(url).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("gateway_url")),
                "{url}: {err:?}"
            );
        }
        let long = format!("http://{}.example", "a".repeat(MAX_GATEWAY_HOST_LEN));
        assert!(gateway_origin(&long).is_err());
    }
}
