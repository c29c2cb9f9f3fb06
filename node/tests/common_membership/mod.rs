//! A network of the test's own making for in-process nodes: a network key, certificates
//! it signs, revocation lists, and a [`Membership`] per node that trusts it (no tracker:
//! the trust is given up front, revocation lists arrive as they would over gossip).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use reelnet_node::membership::{Membership, MembershipConfig};
use reelnet_proto::membership::{
    Certificate, NetworkKey, Revocations, RoleName, Roles, SignedCertificate, SignedRevocations,
    Trust,
};
use reelnet_proto::NodeId;
use tokio_util::sync::CancellationToken;

pub const NETWORK: &str = "testnet";

pub struct TestNetwork {
    pub key: SigningKey,
    pub dir: tempfile::TempDir,
}

impl TestNetwork {
    pub fn new() -> Self {
        Self {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn trust(&self) -> Trust {
        Trust {
            network_id: NETWORK.into(),
            keys: vec![NetworkKey {
                kid: "k1".into(),
                public: self.key.verifying_key(),
                not_after: None,
            }],
            ..Trust::default()
        }
    }

    /// A certificate for `node` with `roles` (open: from open enrollment).
    pub fn cert(&self, node: &SigningKey, roles: &[RoleName], open: bool) -> SignedCertificate {
        let now = reelnet_node::unix_now();
        SignedCertificate::sign(
            &Certificate {
                network_id: NETWORK.into(),
                node: NodeId::from_verifying_key(&node.verifying_key()),
                roles: Roles::of(roles),
                open,
                origins: vec![],
                issued_at: now - 10,
                not_after: now + 3600,
                serial: rand::random(),
                kid: "k1".into(),
            },
            &self.key,
        )
        .unwrap()
    }

    /// The membership of `node` in this network, with `cert` (None: not a member).
    pub async fn membership(
        &self,
        node: &SigningKey,
        cert: Option<SignedCertificate>,
        cancel: &CancellationToken,
    ) -> Membership {
        let config = MembershipConfig {
            trackers: None,
            data_dir: self.dir.path().to_owned(),
            invite: None,
            origins: vec![],
            allowed: Roles::of(&[RoleName::Replica, RoleName::Ingest, RoleName::Edge]),
            refresh: Duration::from_secs(30),
        };
        let (m, _task) = Membership::start_with(
            config,
            node.clone(),
            Some((self.trust(), cert)),
            cancel.clone(),
        )
        .await;
        m
    }

    /// The tracker's binding of `manifest`'s movie to its lineage, at `version`.
    pub fn binding(
        &self,
        manifest: &reelnet_proto::SignedManifest,
        version: u64,
    ) -> reelnet_proto::binding::SignedBinding {
        let m = manifest.verify().unwrap();
        reelnet_proto::binding::SignedBinding::sign(
            &reelnet_proto::binding::Binding {
                network_id: NETWORK.into(),
                movie: m.movie,
                origin: m.origin,
                ingest_id: m.ingest_id,
                manifest: manifest.id(),
                version,
                issued_at: reelnet_node::unix_now(),
                kid: "k1".into(),
            },
            &self.key,
        )
        .unwrap()
    }

    /// A revocation list (serial `serial`) naming `revoked`.
    pub fn revocations(&self, serial: u64, revoked: &[NodeId]) -> SignedRevocations {
        let mut revoked = revoked.to_vec();
        revoked.sort();
        SignedRevocations::sign(
            &Revocations {
                network_id: NETWORK.into(),
                serial,
                revoked,
                issued_at: reelnet_node::unix_now(),
                kid: "k1".into(),
            },
            &self.key,
        )
        .unwrap()
    }
}

/// Makes `config` join the network of the in-process tracker whose data directory is
/// `tracker_data_dir` (running, so the invite is made through its operator API): sets the
/// tracker URL and an invite for `roles`, and a 1-second membership refresh.
pub async fn join(
    mut config: reelnet_node::config::NodeConfig,
    tracker_data_dir: &std::path::Path,
    tracker_url: &str,
    roles: &[RoleName],
) -> reelnet_node::config::NodeConfig {
    let tracker = reelnet_tracker::config::TrackerConfig {
        data_dir: tracker_data_dir.to_owned(),
        ..reelnet_tracker::config::TrackerConfig::default()
    };
    let made = reelnet_tracker::operator::run(
        &tracker,
        reelnet_tracker::operator::NodeCommand::Invite(reelnet_tracker::network::InviteRequest {
            roles: roles.to_vec(),
            uses: Some(1),
            ttl_secs: Some(3600),
        }),
    )
    .await
    .unwrap();
    let reelnet_tracker::operator::NodeOutput::Invite(invite) = made else {
        panic!("not an invite: {made:?}")
    };
    config.tracker.url = tracker_url.into();
    config.tracker.invite = invite.token;
    config.tracker.membership_refresh_secs = 1;
    config
}

/// A tracker in this process, only for membership (nodes enroll with it).
pub struct MembershipTracker {
    pub dir: tempfile::TempDir,
    pub url: String,
    tracker: Option<reelnet_tracker::Tracker>,
}

impl MembershipTracker {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = reelnet_tracker::config::TrackerConfig {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..reelnet_tracker::config::TrackerConfig::default()
        };
        let tracker = reelnet_tracker::Tracker::bind(config).await.unwrap();
        Self {
            url: format!("http://{}", tracker.addr()),
            dir,
            tracker: Some(tracker),
        }
    }

    /// `config` as a member of this tracker's network (replica and ingest).
    pub async fn join(
        &self,
        config: reelnet_node::config::NodeConfig,
    ) -> reelnet_node::config::NodeConfig {
        join(
            config,
            &self.dir.path().join("data"),
            &self.url,
            &[RoleName::Replica, RoleName::Ingest],
        )
        .await
    }
}

impl Drop for MembershipTracker {
    fn drop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.shutdown();
        }
    }
}
