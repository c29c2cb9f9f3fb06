//! Network membership in storage: invites (by the BLAKE3 of their token: the token itself
//! is never stored), enrolled nodes (one record per node id) and the revocation serial.

use super::kv::Transactional;
use reelnet_proto::membership::Roles;
use serde::{Deserialize, Serialize};

use super::{codec, dec_tx, enc_tx, Store, StoreError};

const REVOCATION_SERIAL: &[u8] = b"revocation_serial";

/// An invite, stored under the BLAKE3 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// First 16 hex characters of the token's hash, to name it in lists and logs.
    pub id: String,
    /// Roles a node enrolled with it gets.
    pub roles: Roles,
    /// Enrollments left.
    pub uses_left: u32,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    pub created_at: u64,
    /// Who made it (`operator` or an admin's email).
    pub created_by: String,
}

/// An enrolled node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node id, 64 hex characters.
    pub node_id: String,
    pub roles: Roles,
    /// Enrolled through open enrollment.
    pub open: bool,
    /// Gateway origins given at enrollment.
    pub origins: Vec<String>,
    pub enrolled_at: u64,
    /// The invite it enrolled with (its id), if any.
    pub invite: Option<String>,
    /// The newest certificate issued: serial, issue time and end.
    pub serial: u64,
    pub issued_at: u64,
    pub not_after: u64,
    /// Set when revoked; a revoked node never gets another certificate.
    pub revoked_at: Option<u64>,
}

/// Why an invite could not be redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemError {
    /// No such invite, or already used up.
    Unknown,
    /// Past its expiry.
    Expired,
    /// The node was revoked; it cannot come back with an invite.
    Revoked,
    /// (Open enrollment) the node is an invited member already.
    Invited,
}

impl Store {
    /// Stores a new invite under `hash`.
    pub async fn put_invite(&self, hash: [u8; 32], invite: InviteRecord) -> Result<(), StoreError> {
        self.write(move |t| {
            t.invites.insert(hash, codec::encode(&invite)?)?;
            Ok(())
        })
        .await
    }

    /// Every invite (unexpired or not), as stored.
    pub fn invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        self.trees
            .invites
            .iter()
            .map(|item| {
                let (_, v) = item?;
                codec::decode(&v)
            })
            .collect()
    }

    /// Uses the invite `hash` once and writes node `node_id` as `make` builds it from the
    /// invite and the node's old record, in one
    /// transaction: two nodes racing for a single-use invite cannot both get it.
    pub async fn redeem_invite<F>(
        &self,
        hash: [u8; 32],
        node_id: String,
        now: u64,
        make: F,
    ) -> Result<Result<NodeRecord, RedeemError>, StoreError>
    where
        F: Fn(&InviteRecord, Option<NodeRecord>) -> NodeRecord + Send + 'static,
    {
        self.write(move |t| {
            let r = (&t.invites, &t.nodes).transaction(|(invites, nodes)| {
                let Some(v) = invites.get(hash)? else {
                    return Ok(Err(RedeemError::Unknown));
                };
                let mut invite: InviteRecord = dec_tx(&v)?;
                if invite.expires_at <= now {
                    invites.remove(hash)?;
                    return Ok(Err(RedeemError::Expired));
                }
                if invite.uses_left == 0 {
                    return Ok(Err(RedeemError::Unknown));
                }
                let old: Option<NodeRecord> = match nodes.get(node_id.as_bytes())? {
                    Some(v) => Some(dec_tx(&v)?),
                    None => None,
                };
                if old.as_ref().is_some_and(|o| o.revoked_at.is_some()) {
                    return Ok(Err(RedeemError::Revoked));
                }
                let node = make(&invite, old);
                invite.uses_left -= 1;
                if invite.uses_left == 0 {
                    invites.remove(hash)?;
                } else {
                    invites.insert(hash, enc_tx(&invite)?)?;
                }
                nodes.insert(node.node_id.as_bytes(), enc_tx(&node)?)?;
                Ok(Ok(node))
            });
            r
        })
        .await
    }

    /// Removes expired invites; returns how many.
    pub async fn purge_invites(&self, now: u64) -> Result<usize, StoreError> {
        self.write(move |t| {
            let mut n = 0;
            for item in t.invites.iter() {
                let (k, v) = item?;
                let keep = codec::decode::<InviteRecord>(&v).is_ok_and(|i| i.expires_at > now);
                if !keep {
                    t.invites.remove(k)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    /// A node by id (hex).
    pub fn node(&self, node_id: &str) -> Result<Option<NodeRecord>, StoreError> {
        match self.trees.nodes.get(node_id.as_bytes())? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Every enrolled node, by id.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.trees
            .nodes
            .iter()
            .map(|item| {
                let (_, v) = item?;
                codec::decode(&v)
            })
            .collect()
    }

    /// Writes an open-enrollment node unless the stored one is revoked or invited (checked
    /// and written in one transaction, so a revocation cannot be overwritten).
    pub async fn put_open_node(
        &self,
        node: NodeRecord,
    ) -> Result<Result<NodeRecord, RedeemError>, StoreError> {
        self.write(move |t| {
            let r = t.nodes.transaction(|nodes| {
                if let Some(v) = nodes.get(node.node_id.as_bytes())? {
                    let old: NodeRecord = dec_tx(&v)?;
                    if old.revoked_at.is_some() {
                        return Ok(Err(RedeemError::Revoked));
                    }
                    if !old.open {
                        return Ok(Err(RedeemError::Invited));
                    }
                }
                nodes.insert(node.node_id.as_bytes(), enc_tx(&node)?)?;
                Ok(Ok(node.clone()))
            });
            r
        })
        .await
    }

    /// Applies `f` to node `node_id` and stores it; bumps the revocation serial in the
    /// same transaction when `f` revoked it. `None` when there is no such node.
    pub async fn update_node<F, E>(
        &self,
        node_id: String,
        f: F,
    ) -> Result<Option<Result<NodeRecord, E>>, StoreError>
    where
        F: Fn(&mut NodeRecord) -> Result<(), E> + Send + 'static,
        E: Send + 'static,
    {
        self.write(move |t| {
            let r = (&t.nodes, &t.network).transaction(|(nodes, network)| {
                let Some(v) = nodes.get(node_id.as_bytes())? else {
                    return Ok(None);
                };
                let mut node: NodeRecord = dec_tx(&v)?;
                let was_revoked = node.revoked_at.is_some();
                if let Err(e) = f(&mut node) {
                    return Ok(Some(Err(e)));
                }
                if node.revoked_at.is_some() && !was_revoked {
                    let serial = match network.get(REVOCATION_SERIAL)? {
                        Some(v) => dec_tx::<u64>(&v)?,
                        None => 0,
                    };
                    network.insert(REVOCATION_SERIAL, enc_tx(&(serial + 1))?)?;
                }
                nodes.insert(node_id.as_bytes(), enc_tx(&node)?)?;
                Ok(Some(Ok(node)))
            });
            r
        })
        .await
    }

    /// The revocation list's serial: grows with every revocation (0: none ever).
    pub fn revocation_serial(&self) -> Result<u64, StoreError> {
        match self.trees.network.get(REVOCATION_SERIAL)? {
            Some(v) => codec::decode(&v),
            None => Ok(0),
        }
    }
}
