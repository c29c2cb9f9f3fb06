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
            tracker_url: None,
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
