//! The seams to outside systems. Each is a narrow trait named after what
//! runbookd does with the system, with a real implementation here and fakes
//! in tests. HTTP-speaking checks (http, Prometheus, Alertmanager), failure
//! alerts and dead man's switch pings share one reqwest client; every
//! request carries its own timeout.

pub mod alerts;
pub mod aws;
pub mod kube;
pub mod mail;
pub mod ping;

use std::sync::Arc;

pub struct Adapters {
    pub http: reqwest::Client,
    pub rds: Arc<dyn aws::RdsApi>,
    pub secrets: Arc<dyn aws::SecretsApi>,
    pub cluster: Arc<dyn kube::ClusterApi>,
    /// Where mail goes: SMTP, or the outbox folder.
    pub mail: Arc<dyn mail::Mailer>,
    /// Where job failures are posted as alerts (`alertmanager:`).
    pub alerts: Arc<dyn alerts::AlertSink>,
    /// Dead man's switches (`ping_url`).
    pub pings: Arc<dyn ping::Pinger>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters").finish_non_exhaustive()
    }
}

impl Adapters {
    /// The real systems, each connected on first use.
    pub fn real() -> Self {
        install_crypto_provider();
        let real_aws = Arc::new(aws::Aws::default());
        let http = http_client();
        Adapters {
            rds: real_aws.clone(),
            secrets: real_aws,
            cluster: Arc::new(kube::Cluster::default()),
            mail: Arc::new(mail::Outbox::new("outbox")),
            alerts: Arc::new(alerts::Alertmanager { http: http.clone() }),
            pings: Arc::new(ping::HttpPinger { http: http.clone() }),
            http,
        }
    }

    pub fn with_alerts(mut self, alerts: Arc<dyn alerts::AlertSink>) -> Self {
        self.alerts = alerts;
        self
    }

    pub fn with_pings(mut self, pings: Arc<dyn ping::Pinger>) -> Self {
        self.pings = pings;
        self
    }

    pub fn with_mail(mut self, mail: Arc<dyn mail::Mailer>) -> Self {
        self.mail = mail;
        self
    }

    pub fn with_rds(mut self, rds: Arc<dyn aws::RdsApi>) -> Self {
        self.rds = rds;
        self
    }

    pub fn with_secrets(mut self, secrets: Arc<dyn aws::SecretsApi>) -> Self {
        self.secrets = secrets;
        self
    }

    pub fn with_cluster(mut self, cluster: Arc<dyn kube::ClusterApi>) -> Self {
        self.cluster = cluster;
        self
    }
}

/// One client for all HTTP checks; redirects are not followed, so a check
/// sees the status the endpoint really answers.
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("runbookd/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("the HTTP client's fixed settings are valid")
}

/// An error and its causes, one after another: what a failed call says.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// Every TLS client here (AWS SDK, kube, sqlx, reqwest, lettre) uses
/// rustls with ring, the only provider compiled in. reqwest built without a
/// provider of its own takes the process default and panics without one,
/// so it is installed once, before any client is made.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
