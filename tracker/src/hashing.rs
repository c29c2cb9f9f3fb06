//! Password hashing under a bound. argon2id takes about 19 MiB and a core for tens of
//! milliseconds per hash, so an unbounded burst of registrations, logins or reset confirms
//! would exhaust the tracker's memory. [`HashGate`] owns `concurrency` hashing threads
//! (one per core by default) fed by a queue of at most `queue` waiting hashes; anyone
//! beyond that is answered at once with 503 and `Retry-After` — a flood is refused
//! quickly, never queued without end.
//!
//! Dedicated threads rather than tokio's blocking pool: the pool starts a fresh thread
//! whenever none is idle at that instant, and each fresh thread gets its own malloc arena
//! that keeps its 19 MiB after the hash — a few hundred hashes grew the tracker by
//! hundreds of MiB. With a fixed set of threads the memory is `concurrency` × 19 MiB.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// The bound on password hashing (see the module docs). Cloning shares the threads; they
/// end when the last handle is dropped.
#[derive(Clone)]
pub struct HashGate {
    queue: SyncSender<Job>,
}

impl HashGate {
    /// Starts the hashing threads. `concurrency` 0 means one per core.
    pub fn new(concurrency: usize, queue: usize) -> std::io::Result<Self> {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            concurrency
        };
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self { queue: tx })
    }

    /// Runs `f` (a hash) on a hashing thread, or refuses at once with 503 when the queue
    /// is full. A client that goes away does not stop a hash already queued.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => busy(),
            TrySendError::Disconnected(_) => ApiError::internal("the hashing threads have stopped"),
        })?;
        rx.await
            .map_err(|_| ApiError::internal("a hashing thread dropped its job"))
    }
}

/// A hashing thread: takes jobs until every handle is gone.
fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

fn busy() -> ApiError {
    ApiError {
        retry_after: Some(2),
        ..ApiError::new(
            warp::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the tracker is busy; try again in a moment",
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_queue_is_refused_at_once() {
        let gate = HashGate::new(1, 1).unwrap();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let first = tokio::spawn(async move {
            g.run(move || {
                started_tx.send(()).ok();
                hold.recv().is_ok()
            })
            .await
        });
        // The one thread is busy with the first job; one more may wait.
        tokio::task::spawn_blocking(move || started.recv())
            .await
            .unwrap()
            .unwrap();
        // Fill the one waiting place.
        let (second_tx, second) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            second_tx.send(2).ok();
        });
        assert!(gate.queue.try_send(job).is_ok());
        let third = gate.run(|| 3).await;
        let err = third.err().map(|e| (e.status.as_u16(), e.retry_after));
        assert_eq!(err, Some((503, Some(2))));
        release.send(()).ok();
        assert!(matches!(first.await, Ok(Ok(true))));
        assert_eq!(second.await.ok(), Some(2));
        assert!(matches!(gate.run(|| 4).await, Ok(4)));
    }
}
