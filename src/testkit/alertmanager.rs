//! A real Alertmanager (Debian's `prometheus-alertmanager`) for one test,
//! routing every alert to a webhook the test runs, grouping by
//! `alertname` with a one-second wait so a test sees a notification at
//! once, and sending resolved alerts. No cluster port. Stopped on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Alertmanager {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

const BINARY: &str = "prometheus-alertmanager";

impl Alertmanager {
    /// Starts one that posts its notifications to `webhook`. Panics, saying
    /// how to install it, when the binary is missing.
    pub async fn start(webhook: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for Alertmanager");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                r#"route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "{webhook}"
        send_resolved: true
"#
            ),
        )
        .expect("write the Alertmanager config");
        let port = super::binary::free_port();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {BINARY} ({e}): install it with `apt-get install prometheus-alertmanager` (scripts/test.sh does)"
                )
            });
        let am = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let http = crate::adapters::http_client();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("{}/-/ready", am.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return am;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{BINARY} did not become ready on {} within 30 s",
                am.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The alerts it holds now (`GET /api/v2/alerts`), active or not.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let resp = crate::adapters::http_client()
            .get(format!("{}/api/v2/alerts", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("Alertmanager answers GET /api/v2/alerts");
        let text = resp.text().await.expect("a body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
