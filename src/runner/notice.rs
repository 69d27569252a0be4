//! A run's notice: its mail as [`crate::notify`] decides, and the
//! Alertmanager post when its job's failing state flipped.

use crate::config::JobConfig;
use crate::delivery::Delivered;
use crate::notify;

use super::{Ended, Runner};

impl Runner {
    /// Mails a run's final outcome as [`crate::notify`] decides, and posts
    /// its alert when the job's failing state flipped
    /// ([`crate::alerting`], in the background). A mail that cannot go is
    /// kept for the daemon; nothing here fails the run.
    pub(super) async fn notify(&self, job: &JobConfig, ended: &Ended) -> Option<String> {
        let now = self.clock.now();
        let verdict = match notify::record(self.store.as_ref(), job, ended.id, ended.status, now)
            .await
        {
            Ok(Some(v)) => v,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(job = %job.name, run = ended.id, "cannot record the notification state: {e}");
                return None;
            }
        };
        if verdict.changed {
            self.alert_in_background(&job.name);
        }
        // Alerts only: a job may notify with no one to mail.
        if job.notify_to.is_empty() {
            return None;
        }
        let notice = verdict.notice(job.notify)?;
        let run = match self.store.get_run(ended.id).await {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(job = %job.name, run = ended.id, "cannot read the run to notify: {e}");
                return None;
            }
        };
        let (mail, links) = match &self.env.config {
            Some(c) => (c.mail.clone(), c.links.clone()),
            None => Default::default(),
        };
        let mut draft = notify::compose(
            notice,
            job,
            &run,
            &mail,
            &links,
            job.timezone,
            &ended.chained,
        );
        draft.text = self.redactor.redact(&draft.text);
        if let Some(h) = &draft.html {
            draft.html = Some(self.redactor.redact(h));
        }
        let id = notify::message_id(&job.name, run.id, notice, &self.identity.host);
        let email = match draft.compose(&id) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(job = %job.name, run = run.id, "cannot build the notification: {e}");
                return None;
            }
        };
        let what = format!("{} notification of run {}", notice.word(), run.id);
        let said = match self
            .postman
            .deliver(&email, Some(&job.name), Some(run.id))
            .await
        {
            Ok(Delivered::Sent(to)) => {
                format!("{what} sent to {}: {to}", email.recipients.join(", "))
            }
            Ok(Delivered::Pending { error, .. }) => {
                format!("{what} not sent yet ({error}); kept, and resent by `runbookd serve`")
            }
            Ok(Delivered::AlreadySent) => return None,
            Err(e) => format!("{what} lost: {e}"),
        };
        tracing::info!(job = %job.name, run = run.id, "{said}");
        Some(said)
    }
}
