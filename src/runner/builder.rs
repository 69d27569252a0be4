//! [`RunnerBuilder`]: wiring a [`Runner`] to its store, clock and the
//! outside systems.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

use crate::adapters::Adapters;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::delivery::Postman;
use crate::identity::Identity;
use crate::jobs::ExecEnv;
use crate::secret::Redactor;
use crate::store::{HistoryStore, WatchedStore};

use super::Runner;

/// How long a failure's mail waits for the runs it chained (a triage
/// takes about its slowest part, under 10 s).
pub const CHAIN_WAIT: Duration = Duration::from_secs(30);

/// Builds a [`Runner`]: the one place runs are wired to the store, the
/// clock and the outside systems (real or fake).
pub struct RunnerBuilder {
    store: Arc<dyn HistoryStore>,
    adapters: Arc<Adapters>,
    clock: Arc<dyn Clock>,
    identity: Identity,
    heartbeat: Duration,
    log_max_bytes: usize,
    redactor: Redactor,
    config: Option<Arc<Config>>,
    chain_wait: Duration,
}

impl RunnerBuilder {
    /// How long a failure's mail waits for its chained runs (default
    /// [`CHAIN_WAIT`]).
    pub fn chain_wait(mut self, d: Duration) -> Self {
        self.chain_wait = d;
        self
    }

    /// Heartbeat, log size, redactor and mail settings from the jobs file,
    /// which jobs that look at other jobs (the report) also see.
    pub fn config(mut self, config: &Config) -> Self {
        self.heartbeat = config.daemon.heartbeat;
        self.log_max_bytes = config.history.log_max_bytes;
        self.redactor = config.redactor.clone();
        self.config = Some(Arc::new(config.clone()));
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    pub fn log_max_bytes(mut self, n: usize) -> Self {
        self.log_max_bytes = n;
        self
    }

    pub fn redactor(mut self, r: Redactor) -> Self {
        self.redactor = r;
        self
    }

    pub fn build(self) -> Runner {
        let (events, _) = broadcast::channel(1024);
        // Every call the runner and the scheduler make is watched: failures
        // counted, and a down store known at once.
        let store: Arc<dyn HistoryStore> = match self.store.health() {
            Some(_) => self.store,
            None => Arc::new(WatchedStore::new(self.store)),
        };
        let health = store.health().expect("a watched store has health");
        let postman = Postman::new(
            store.clone(),
            self.adapters.mail.clone(),
            self.clock.clone(),
        );
        Runner {
            health,
            postman,
            env: ExecEnv {
                adapters: self.adapters,
                clock: self.clock.clone(),
                store: store.clone(),
                config: self.config,
                redactor: self.redactor.clone(),
            },
            store,
            clock: self.clock,
            identity: self.identity,
            heartbeat: self.heartbeat.max(Duration::from_millis(50)),
            log_max_bytes: self.log_max_bytes,
            redactor: self.redactor,
            events,
            tee: None,
            chain_wait: self.chain_wait,
            local: Arc::default(),
            outbound: TaskTracker::new(),
        }
    }
}

impl Runner {
    /// A runner over `store`, reaching the outside through `adapters`;
    /// the rest defaults (system clock, this process, 5 s heartbeat).
    pub fn builder(store: Arc<dyn HistoryStore>, adapters: Arc<Adapters>) -> RunnerBuilder {
        RunnerBuilder {
            store,
            adapters,
            clock: Arc::new(SystemClock),
            identity: Identity::current(),
            heartbeat: Duration::from_secs(5),
            log_max_bytes: 256 * 1024,
            redactor: Redactor::default(),
            config: None,
            chain_wait: CHAIN_WAIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn builder() -> (tempfile::TempDir, RunnerBuilder) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("history.db").display());
        let store = crate::store::open(&url)
            .await
            .expect("open the SQLite store");
        (dir, Runner::builder(store, Arc::new(Adapters::real())))
    }

    #[tokio::test]
    async fn defaults_and_a_watched_store() {
        let (_dir, b) = builder().await;
        let runner = b.build();
        assert_eq!(runner.heartbeat, Duration::from_secs(5));
        assert_eq!(runner.log_max_bytes, 256 * 1024);
        assert_eq!(runner.chain_wait, CHAIN_WAIT);
        assert!(
            runner.store().health().is_some(),
            "the runner's store is not watched"
        );
        assert!(runner.tee.is_none());
    }

    #[tokio::test]
    async fn settings_reach_the_runner_and_the_heartbeat_has_a_floor() {
        let (_dir, b) = builder().await;
        let runner = b
            .heartbeat(Duration::from_millis(10))
            .log_max_bytes(1000)
            .chain_wait(Duration::from_secs(2))
            .build();
        assert_eq!(runner.heartbeat, Duration::from_millis(50));
        assert_eq!(runner.log_max_bytes, 1000);
        assert_eq!(runner.chain_wait, Duration::from_secs(2));

        let (_dir, b) = builder().await;
        let runner = b.heartbeat(Duration::from_secs(1)).build();
        assert_eq!(runner.heartbeat, Duration::from_secs(1));
    }
}
