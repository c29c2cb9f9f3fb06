//! The rooms persister: the actor hands it room changes (never blocking on storage) and it
//! writes them in order through the store (newest `seq` wins); on shutdown it drains what
//! is queued so the last states are durable.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::{RoomRecord, Store, StoreError};

pub(super) enum Persist {
    Put(RoomRecord),
    Delete(String),
}

/// Writes room changes in order through the store's writer.
pub(super) async fn persister(
    store: Store,
    mut rx: mpsc::Receiver<Persist>,
    cancel: CancellationToken,
) -> Result<(), StoreError> {
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            _ = cancel.cancelled() => None,
        };
        let job = match job {
            Some(j) => j,
            None => {
                // Drain what is queued so the last states are durable.
                while let Ok(j) = rx.try_recv() {
                    apply(&store, j).await;
                }
                return Ok(());
            }
        };
        apply(&store, job).await;
    }
}

async fn apply(store: &Store, job: Persist) {
    let res = match job {
        Persist::Put(rec) => store.put_room_if_newer(rec).await,
        Persist::Delete(id) => store.delete_room(id).await,
    };
    if let Err(err) = res {
        tracing::warn!(%err, "cannot persist a room");
    }
}
