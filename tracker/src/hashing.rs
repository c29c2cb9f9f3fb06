//! Password hashing under a bound. argon2id takes about 19 MiB and a core for tens of
//! milliseconds per hash, so an unbounded burst of registrations, logins or reset confirms
//! would exhaust the tracker's memory. [`HashGate`] runs at most `concurrency` hashes at
//! once (sized to the machine's cores by default), lets at most `queue` more wait, and
//! answers anyone beyond that at once with 503 and `Retry-After` — a flood is refused
//! quickly, never queued without end.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The bound on password hashing (see the module docs).
#[derive(Clone)]
pub struct HashGate {
    /// Running plus waiting hashes.
    slots: Arc<Semaphore>,
    /// Running hashes.
    workers: Arc<Semaphore>,
}

impl HashGate {
    /// `concurrency` 0 means one per core.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            concurrency
        };
        Self {
            slots: Arc::new(Semaphore::new(concurrency + queue)),
            workers: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Runs `f` (a hash) on a blocking thread once a worker is free, or refuses at once
    /// with 503 when the queue is full. The permits travel with the blocking job, so a
    /// client that goes away mid-hash does not free a slot the hash still uses.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| busy())?;
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let value = f();
            drop(worker);
            drop(slot);
            value
        })
        .await
        .map_err(ApiError::internal)
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_queue_is_refused_at_once() {
        let gate = HashGate::new(1, 1);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let first = tokio::spawn(async move { g.run(move || hold.recv().is_ok()).await });
        // Wait until the first job holds the worker.
        while gate.workers.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let g = gate.clone();
        let second = tokio::spawn(async move { g.run(|| 2).await });
        while gate.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let third = gate.run(|| 3).await;
        let err = third.err().map(|e| (e.status.as_u16(), e.retry_after));
        assert_eq!(err, Some((503, Some(2))));
        release.send(()).ok();
        assert!(matches!(first.await, Ok(Ok(true))));
        assert!(matches!(second.await, Ok(Ok(2))));
        assert!(matches!(gate.run(|| 4).await, Ok(4)));
    }
}
