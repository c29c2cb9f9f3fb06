//! A user's playback preferences in storage: one record per user, under the user id.

use super::{codec, Preferences, Store, StoreError, UserId};

impl Store {
    /// `uid`'s stored preferences (`None` when they never saved any).
    pub fn preferences(&self, uid: &UserId) -> Result<Option<Preferences>, StoreError> {
        match self.trees.preferences.get(uid.0)? {
            Some(raw) => Ok(Some(codec::decode(&raw)?)),
            None => Ok(None),
        }
    }

    /// Replaces `uid`'s preferences; acknowledged once flushed (group commit).
    pub async fn put_preferences(&self, uid: UserId, prefs: Preferences) -> Result<(), StoreError> {
        let bytes = codec::encode(&prefs)?;
        self.write(move |t| {
            t.preferences.insert(uid.0, bytes)?;
            Ok(())
        })
        .await
    }
}
