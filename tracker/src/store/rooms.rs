//! Watch-party rooms in storage: one record per room id, the newest `seq` wins.

use super::{codec, RoomRecord, Store, StoreError};

impl Store {
    /// Every stored room (each one read on its own, so one unreadable record does not
    /// hide the others).
    pub fn rooms(&self) -> Vec<Result<RoomRecord, StoreError>> {
        self.trees
            .rooms
            .iter()
            .map(|item| item.and_then(|(_, v)| codec::decode::<RoomRecord>(&v)))
            .collect()
    }

    /// Room `id`, if stored.
    pub fn room(&self, id: &str) -> Result<Option<RoomRecord>, StoreError> {
        match self.trees.rooms.get(id.as_bytes())? {
            Some(v) => codec::decode::<RoomRecord>(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Writes `rec` unless the stored record is newer; answers once durable.
    pub async fn put_room_if_newer(&self, rec: RoomRecord) -> Result<(), StoreError> {
        self.write(move |trees| {
            if let Some(old) = trees.rooms.get(rec.id.as_bytes())? {
                if let Ok(old) = codec::decode::<RoomRecord>(&old) {
                    if old.seq > rec.seq {
                        return Ok(());
                    }
                }
            }
            trees
                .rooms
                .insert(rec.id.as_bytes(), codec::encode(&rec)?)?;
            Ok(())
        })
        .await
    }

    /// Removes room `id`.
    pub async fn delete_room(&self, id: String) -> Result<(), StoreError> {
        self.write(move |trees| {
            trees.rooms.remove(id.as_bytes())?;
            Ok(())
        })
        .await
    }
}
