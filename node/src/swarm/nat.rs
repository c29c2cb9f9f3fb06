//! Nodes behind NAT: what this node knows about its own reachability, which of its
//! addresses it may advertise, and the pieces of NAT traversal the swarm composes
//! (AutoNAT v2, relay v2, DCUtR, UPnP).
//!
//! # Reachability
//!
//! [`ReachabilityTracker`] turns AutoNAT v2 probe results into one state, `public`,
//! `private` or `unknown`: an address a server dialled back is confirmed (public); a failed
//! probe with nothing confirmed means private; no result within
//! [`NatConfig::unknown_timeout`] counts like private for relaying. Addresses the operator
//! set (`external_addrs`; a relay's listen addresses) count as confirmed from the start,
//! so such a node is public (and, with `relay_server = "auto"`, a relay) until a probe of
//! one of them fails. Only direct IP addresses are judged ([`is_testable`]): identify's
//! observations on relayed connections (circuits, bare `/p2p/<id>`) are not candidates.
//! While the node is not
//! public it keeps a relay reservation ([`ReachabilityTracker::wants_relay`]) on one of the
//! configured `relays` or on a connected member that speaks the relay hop protocol.
//!
//! # Confirmed addresses
//!
//! What a node advertises (identify, and so Kademlia) is the libp2p *external addresses*
//! plus its listen addresses. Explicit addresses from the config are always advertised
//! (they may be loopback or private: testnets use them). Learned addresses are advertised
//! only once confirmed: identify's observed addresses are candidates that AutoNAT v2 probes,
//! and a UPnP mapping, which libp2p-upnp would confirm by itself, is turned back into a
//! candidate ([`AddressBook::on_upnp_mapped`], [`Candidates`]) until AutoNAT confirms it.
//! Relay circuit addresses are confirmed by the relay's reservation.
//!
//! # Relay server
//!
//! `relay_server = "on"` serves reservations from the start (and, without explicit
//! `external_addrs`, hands out its listen addresses), `"off"` never, `"auto"` builds the
//! relay behaviour (libp2p decides the behaviours when the swarm is built) but advertises
//! the hop protocol (`relay::Behaviour::set_status`) and accepts reservations and circuits
//! only while AutoNAT confirms a public address: a shared gate ([`RelayGate`]) consulted
//! by the relay's rate limiters refuses them otherwise. The limits are sized for
//! signalling and hole punching, not media (segments go direct or over the connection the
//! node behind a symmetric NAT dialled out).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

/// `p2p.relay_server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayServerMode {
    /// Serve as a relay once AutoNAT confirmed a public address.
    #[default]
    Auto,
    /// Always serve as a relay.
    On,
    /// Never.
    Off,
}

/// NAT traversal settings (`[p2p]` keys of the same names).
#[derive(Debug, Clone)]
pub struct NatConfig {
    /// Run AutoNAT v2 (client and server).
    pub autonat: bool,
    /// Ask the local gateway for a port mapping (UPnP IGD).
    pub upnp: bool,
    pub relay_server: RelayServerMode,
    pub relay_max_reservations: usize,
    pub relay_max_circuits: usize,
    /// Bytes one relayed circuit may carry (each way).
    pub relay_circuit_bytes: u64,
    /// How long one relayed circuit may last.
    pub relay_circuit_secs: u64,
    /// Relays to reserve on when not public (multiaddrs with `/p2p/<id>`).
    pub relays: Vec<Multiaddr>,
    /// Addresses set explicitly in the config: always advertised.
    pub external: Vec<Multiaddr>,
    /// With no AutoNAT result after this long, behave as if private (reserve a relay).
    pub unknown_timeout: Duration,
    /// Upgrade relayed connections to direct ones by hole punching (DCUtR).
    pub hole_punch: bool,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            autonat: true,
            upnp: false,
            relay_server: RelayServerMode::Auto,
            relay_max_reservations: 64,
            relay_max_circuits: 16,
            relay_circuit_bytes: 1 << 20,
            relay_circuit_secs: 120,
            relays: Vec::new(),
            external: Vec::new(),
            unknown_timeout: Duration::from_secs(30),
            hole_punch: true,
        }
    }
}

/// What AutoNAT says about this node.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    #[default]
    Unknown,
    Public,
    Private,
}

impl Reachability {
    pub const ALL: [Reachability; 3] = [Self::Unknown, Self::Public, Self::Private];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// Whether an address goes through a relay.
pub fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether `addr` is one this node could be dialled at directly, so one an AutoNAT probe
/// says something about: an IP (or DNS name) with a TCP port or QUIC, not through a relay,
/// not unspecified. Bare `/p2p/<id>` observations (from relayed connections) are not.
pub fn is_testable(addr: &Multiaddr) -> bool {
    let mut parts = addr.iter();
    let host_ok = match parts.next() {
        Some(Protocol::Ip4(ip)) => !ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => !ip.is_unspecified(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)) => true,
        _ => false,
    };
    host_ok
        && matches!(parts.next(), Some(Protocol::Tcp(_) | Protocol::Udp(_)))
        && !is_circuit(addr)
}

/// The reachability state machine (see the module docs). Pure: driven by events and the
/// time they happen at, so tests run it with paused time.
#[derive(Debug)]
pub struct ReachabilityTracker {
    state: Reachability,
    started: Instant,
    unknown_timeout: Duration,
    confirmed: HashSet<Multiaddr>,
}

impl ReachabilityTracker {
    /// `explicit`: the addresses the operator set (`external_addrs`, or a relay's listen
    /// addresses): taken as reachable, so a node with one is public from the start (it
    /// serves as a relay with `relay_server = "auto"` and reserves none) unless an AutoNAT
    /// probe of it fails.
    pub fn new(
        now: Instant,
        unknown_timeout: Duration,
        explicit: impl IntoIterator<Item = Multiaddr>,
    ) -> Self {
        let confirmed: HashSet<Multiaddr> = explicit.into_iter().filter(is_testable).collect();
        Self {
            state: if confirmed.is_empty() {
                Reachability::Unknown
            } else {
                Reachability::Public
            },
            started: now,
            unknown_timeout,
            confirmed,
        }
    }

    pub fn state(&self) -> Reachability {
        self.state
    }

    /// Addresses AutoNAT confirmed (and that have not failed since).
    pub fn confirmed(&self) -> impl Iterator<Item = &Multiaddr> {
        self.confirmed.iter()
    }

    /// An AutoNAT v2 probe of `addr` ended. Returns the new state on a transition.
    pub fn on_probe(&mut self, addr: &Multiaddr, reachable: bool) -> Option<Reachability> {
        if !is_testable(addr) {
            // A circuit address (or a bare peer id) says nothing about this node's own
            // reachability.
            return None;
        }
        if reachable {
            self.confirmed.insert(addr.clone());
        } else {
            self.confirmed.remove(addr);
        }
        let next = if self.confirmed.is_empty() {
            Reachability::Private
        } else {
            Reachability::Public
        };
        self.set(next)
    }

    /// A confirmed external address expired (e.g. a UPnP mapping was lost).
    pub fn on_expired(&mut self, addr: &Multiaddr) -> Option<Reachability> {
        if !self.confirmed.remove(addr) || !self.confirmed.is_empty() {
            return None;
        }
        self.set(Reachability::Private)
    }

    fn set(&mut self, next: Reachability) -> Option<Reachability> {
        (next != self.state).then(|| {
            self.state = next;
            next
        })
    }

    /// Whether the node should hold a relay reservation now: it is private, or still
    /// unknown after the timeout.
    pub fn wants_relay(&self, now: Instant) -> bool {
        match self.state {
            Reachability::Public => false,
            Reachability::Private => true,
            Reachability::Unknown => now.duration_since(self.started) >= self.unknown_timeout,
        }
    }
}

/// Which addresses this node may advertise (see the module docs).
#[derive(Debug, Default)]
pub struct AddressBook {
    explicit: HashSet<Multiaddr>,
    confirmed: HashSet<Multiaddr>,
    candidates: HashSet<Multiaddr>,
}

/// What to do with an address a behaviour reported as external.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressAction {
    /// Keep advertising it.
    Keep,
    /// Withdraw it and have AutoNAT probe it as a candidate.
    Unconfirm,
}

impl AddressBook {
    pub fn new(explicit: impl IntoIterator<Item = Multiaddr>) -> Self {
        Self {
            explicit: explicit.into_iter().collect(),
            ..Self::default()
        }
    }

    /// A learned address (identify's observation, a UPnP mapping): a candidate only.
    pub fn on_candidate(&mut self, addr: Multiaddr) {
        if is_testable(&addr) && !self.explicit.contains(&addr) && !self.confirmed.contains(&addr) {
            self.candidates.insert(addr);
        }
    }

    /// An AutoNAT probe ended.
    pub fn on_probe(&mut self, addr: &Multiaddr, reachable: bool) {
        if reachable {
            self.candidates.remove(addr);
            self.confirmed.insert(addr.clone());
        } else {
            self.confirmed.remove(addr);
        }
    }

    /// libp2p-upnp mapped a port and (by itself) marked the address external.
    pub fn on_upnp_mapped(&mut self, addr: &Multiaddr) -> AddressAction {
        if self.may_advertise(addr) {
            return AddressAction::Keep;
        }
        self.on_candidate(addr.clone());
        AddressAction::Unconfirm
    }

    /// Explicit, AutoNAT-confirmed, or a relay circuit (confirmed by its reservation).
    pub fn may_advertise(&self, addr: &Multiaddr) -> bool {
        self.explicit.contains(addr) || self.confirmed.contains(addr) || is_circuit(addr)
    }

    /// Everything this node advertises beyond its listen addresses, sorted.
    pub fn advertised(&self) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> = self.explicit.union(&self.confirmed).cloned().collect();
        out.sort_by_key(|a| a.to_string());
        out
    }

    /// Learned addresses waiting for confirmation, sorted.
    pub fn candidates(&self) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> = self.candidates.iter().cloned().collect();
        out.sort_by_key(|a| a.to_string());
        out
    }
}

/// Opens the relay server's gate once the node is confirmed public (`relay_server = "auto"`).
/// Used as a relay rate limiter: a closed gate refuses reservations and circuits.
#[derive(Debug, Clone)]
pub struct RelayGate(Arc<AtomicBool>);

impl RelayGate {
    pub fn new(open: bool) -> Self {
        Self(Arc::new(AtomicBool::new(open)))
    }

    pub fn set(&self, open: bool) {
        self.0.store(open, Ordering::Relaxed);
    }

    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl libp2p::relay::RateLimiter for RelayGate {
    fn try_next(&mut self, _peer: PeerId, _addr: &Multiaddr, _now: std::time::Instant) -> bool {
        self.is_open()
    }
}

/// Hands addresses to the swarm as external address *candidates*, which AutoNAT v2 then
/// probes (used for UPnP mappings, see [`AddressBook::on_upnp_mapped`]).
#[derive(Default)]
pub struct Candidates {
    queue: VecDeque<Multiaddr>,
}

impl Candidates {
    pub fn push(&mut self, addr: Multiaddr) {
        self.queue.push_back(addr);
    }
}

impl NetworkBehaviour for Candidates {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.queue.pop_front() {
            Some(addr) => Poll::Ready(ToSwarm::NewExternalAddrCandidate(addr)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    /// Driven by events and the instants they happen at (the tracker never reads the
    /// clock itself), so no time passes in the test.
    #[test]
    fn reachability_follows_probes_and_times_out() {
        let timeout = Duration::from_secs(30);
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut t = ReachabilityTracker::new(t0, timeout, []);
        assert_eq!(t.state(), Reachability::Unknown);
        assert!(!t.wants_relay(t0));
        assert!(!t.wants_relay(at(29)));
        // Unknown for too long: reserve a relay.
        assert!(t.wants_relay(at(30)));

        let a = addr("/ip4/198.18.0.2/tcp/4001");
        let b = addr("/ip4/198.18.0.2/udp/4001/quic-v1");
        assert_eq!(t.on_probe(&a, false), Some(Reachability::Private));
        assert!(t.wants_relay(at(31)));
        assert_eq!(t.on_probe(&a, false), None, "no transition, no log");
        assert_eq!(t.on_probe(&b, true), Some(Reachability::Public));
        assert!(!t.wants_relay(at(32)));

        // A probe failing before the timeout makes the node private at once.
        let mut early = ReachabilityTracker::new(t0, timeout, []);
        assert_eq!(early.on_probe(&a, false), Some(Reachability::Private));
        assert!(early.wants_relay(at(1)));
        // One failing address does not make a node with another confirmed one private.
        assert_eq!(t.on_probe(&a, false), None);
        assert_eq!(t.state(), Reachability::Public);
        // A circuit address never counts.
        let circuit = addr("/ip4/198.18.0.9/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit");
        assert_eq!(t.on_probe(&circuit, false), None);
        // Nor does a bare peer id (what identify observes on a relayed connection).
        let bare = addr("/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN");
        assert_eq!(t.on_probe(&bare, false), None);
        assert_eq!(early.on_probe(&bare, true), None);
        // Losing the last confirmed address: private again.
        assert_eq!(t.on_expired(&b), Some(Reachability::Private));
        assert_eq!(t.confirmed().count(), 0);
    }

    /// An address the operator set is taken as reachable: public from the start, never a
    /// relay reservation, until a probe of that very address fails.
    #[test]
    fn explicit_addresses_make_a_node_public() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let public = addr("/ip4/198.18.0.11/tcp/4001");
        let mut t =
            ReachabilityTracker::new(t0, timeout, [public.clone(), addr("/ip4/0.0.0.0/tcp/4001")]);
        assert_eq!(t.state(), Reachability::Public);
        assert!(!t.wants_relay(t0 + Duration::from_secs(600)));
        assert_eq!(
            t.confirmed().count(),
            1,
            "the unspecified address is not one"
        );
        assert_eq!(t.on_probe(&public, false), Some(Reachability::Private));
        // Only circuit or bare addresses given: as if none.
        let none = ReachabilityTracker::new(
            t0,
            timeout,
            [addr(
                "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
            )],
        );
        assert_eq!(none.state(), Reachability::Unknown);
    }

    #[test]
    fn testable_addresses() {
        assert!(is_testable(&addr("/ip4/198.18.0.2/tcp/4001")));
        assert!(is_testable(&addr("/ip4/198.18.0.2/udp/4001/quic-v1")));
        assert!(is_testable(&addr("/dns4/node.example.org/tcp/4001")));
        assert!(!is_testable(&addr("/ip4/0.0.0.0/tcp/4001")));
        assert!(!is_testable(&addr("/ip4/198.18.0.2")));
        assert!(!is_testable(&addr(
            "/ip4/198.18.0.9/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
        )));
    }

    #[test]
    fn only_explicit_and_confirmed_addresses_are_advertised() {
        let explicit = addr("/ip4/127.0.0.1/tcp/4001");
        let mut book = AddressBook::new([explicit.clone()]);
        assert!(
            book.may_advertise(&explicit),
            "explicit loopback is advertised"
        );

        // Observed by identify: a candidate, not advertised.
        let observed = addr("/ip4/198.18.1.1/tcp/50000");
        book.on_candidate(observed.clone());
        assert!(!book.may_advertise(&observed));
        assert_eq!(book.advertised(), vec![explicit.clone()]);
        assert_eq!(book.candidates(), vec![observed.clone()]);

        // UPnP's own confirmation is withdrawn until AutoNAT confirms.
        let mapped = addr("/ip4/198.18.1.1/tcp/4001");
        assert_eq!(book.on_upnp_mapped(&mapped), AddressAction::Unconfirm);
        assert!(!book.may_advertise(&mapped));
        book.on_probe(&mapped, true);
        assert!(book.may_advertise(&mapped));
        assert_eq!(book.on_upnp_mapped(&mapped), AddressAction::Keep);
        assert_eq!(book.advertised(), vec![explicit.clone(), mapped.clone()]);
        assert_eq!(book.candidates(), vec![observed.clone()]);

        // A failed probe withdraws it again; explicit ones stay whatever AutoNAT says.
        book.on_probe(&mapped, false);
        book.on_probe(&explicit, false);
        assert!(!book.may_advertise(&mapped));
        assert!(book.may_advertise(&explicit));

        // Relay circuits are confirmed by their reservation.
        let circuit = addr("/ip4/198.18.0.9/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit");
        assert!(book.may_advertise(&circuit));
    }

    #[test]
    fn relay_gate() {
        use libp2p::relay::RateLimiter;
        let gate = RelayGate::new(false);
        let mut limiter = gate.clone();
        let now = std::time::Instant::now();
        let peer = PeerId::random();
        assert!(!limiter.try_next(peer, &addr("/ip4/127.0.0.1/tcp/1"), now));
        gate.set(true);
        assert!(limiter.try_next(peer, &addr("/ip4/127.0.0.1/tcp/1"), now));
    }
}
