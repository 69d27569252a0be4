//! One job at a time through a real runner, on a fresh SQLite history:
//! the harness of the end-to-end tests of job kinds, which differ only in
//! their jobs file, their fakes, the environment the file reads and the
//! clock.

use std::sync::Arc;
use std::time::Duration;

use super::TestDatabase;
use crate::adapters::Adapters;
use crate::clock::Clock;
use crate::config::Config;
use crate::model::Run;
use crate::runner::{Admission, RunRequest, Runner, Stop};
use crate::store::HistoryStore;

/// How long a test run may take before the test fails.
const RUN_WAIT: Duration = Duration::from_secs(60);

pub struct World {
    _db: TestDatabase,
    pub store: Arc<dyn HistoryStore>,
    pub config: Config,
    pub runner: Runner,
}

pub struct WorldBuilder {
    yaml: String,
    adapters: Adapters,
    env: Vec<(String, String)>,
    clock: Option<Arc<dyn Clock>>,
}

impl World {
    /// A world running the jobs of `yaml` against `adapters`.
    pub fn builder(yaml: &str, adapters: Adapters) -> WorldBuilder {
        WorldBuilder {
            yaml: yaml.to_string(),
            adapters,
            env: Vec::new(),
            clock: None,
        }
    }

    /// Claims and runs `job` as an operator would (`triggered_by: sre`),
    /// and returns its run as the history has it.
    pub async fn run_with(&self, job: &str, req: RunRequest, stop: Stop) -> Run {
        let job = self
            .config
            .job(job)
            .unwrap_or_else(|e| panic!("{e}"))
            .clone();
        let mut req = RunRequest {
            triggered_by: "sre".into(),
            ..req
        };
        let id = match self.runner.admit(&job, &mut req).await.unwrap() {
            Admission::Start { id } => id,
            other => panic!("a manual run of {} starts: {other:?}", job.name),
        };
        let ended = tokio::time::timeout(RUN_WAIT, self.runner.execute(&job, &req, id, &stop))
            .await
            .unwrap_or_else(|_| panic!("the run of {} ends within {RUN_WAIT:?}", job.name));
        self.store.get_run(ended.id).await.unwrap().unwrap()
    }

    pub async fn run(&self, job: &str) -> Run {
        self.run_with(job, RunRequest::default(), Stop::new()).await
    }

    pub async fn dry(&self, job: &str) -> Run {
        let dry = RunRequest {
            dry_run: true,
            ..Default::default()
        };
        self.run_with(job, dry, Stop::new()).await
    }
}

impl WorldBuilder {
    /// Variables the jobs file's `${VAR}` read (none by default: the
    /// process environment is never read).
    pub fn env(mut self, vars: &[(&str, &str)]) -> Self {
        self.env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub async fn build(self) -> World {
        let db = TestDatabase::sqlite();
        let store = db.open().await;
        let env = self.env;
        let config = crate::jobs::load_str(std::path::Path::new("jobs.yaml"), &self.yaml, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut runner = Runner::builder(store.clone(), Arc::new(self.adapters)).config(&config);
        if let Some(clock) = self.clock {
            runner = runner.clock(clock);
        }
        World {
            _db: db,
            store,
            config,
            runner: runner.build(),
        }
    }
}
