//! Sign-in through the tracker in storage: a user's consents to clients (member nodes).

use super::{codec, Consent, Store, StoreError, UserId};

impl Store {
    /// Records `user`'s consent to node `node` (hex id).
    pub async fn put_consent(
        &self,
        user: UserId,
        node: String,
        consent: Consent,
    ) -> Result<(), StoreError> {
        let bytes = codec::encode(&consent)?;
        self.write(move |t| {
            t.consents.insert(user.key(node.as_bytes()), bytes)?;
            Ok(())
        })
        .await
    }

    /// `user`'s consent to node `node`, if given.
    pub fn consent(&self, user: &UserId, node: &str) -> Result<Option<Consent>, StoreError> {
        match self.trees.consents.get(user.key(node.as_bytes()))? {
            Some(raw) => Ok(Some(codec::decode(&raw)?)),
            None => Ok(None),
        }
    }
}
