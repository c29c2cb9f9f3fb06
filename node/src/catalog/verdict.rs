//! [`Verdict`]: what the catalog made of an offered record or manifest. On its own so
//! that membership, which answers with it too, does not import the catalog.

/// What the catalog made of an offered record or manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// New information; it is in the index now (gossip: accept and forward).
    Accepted,
    /// Already known (same `seq` or same bytes); nothing changed (gossip: ignore).
    Duplicate,
    /// Older than what is known, within the reordering grace; nothing changed (gossip:
    /// ignore).
    Stale,
    /// Older than what is known, long after the newer one arrived: a replay; nothing changed
    /// (gossip: reject, penalising the sender).
    Replay,
    /// Correctly signed but past its expiry; nothing changed (gossip: ignore, since clocks
    /// and propagation delays differ).
    Expired,
    /// Malformed, badly signed, out of bounds or issued in the future; nothing changed
    /// (gossip: reject, penalising the sender).
    Invalid(String),
    /// Valid, but from (or originated by) a node that is not a member with the needed role;
    /// nothing changed (gossip: reject, penalising the sender).
    NotMember(String),
    /// A manifest whose origin has no known record yet (so no known certificate); nothing
    /// changed (gossip: ignore; it comes again with catalog sync or the origin's next round).
    UnknownOrigin,
    /// A manifest for a movie the network bound to another source; nothing changed
    /// (gossip: ignore — a member may ingest a movie that is already bound, and honest
    /// peers may forward it before the binding reached them).
    OtherLineage(String),
}
