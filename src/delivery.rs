//! Getting a message out once. It is kept in the history store before the
//! first try and marked sent after, under its Message-ID: a mail server
//! that is down loses nothing (the daemon resends it on a later tick), and
//! a resend is the same message, never a second one. A replica takes a
//! message to send with a lease, so two daemons never send it both.
//!
//! One gap is left on purpose: a server that accepts the message but whose
//! reply is lost (or a store that fails to record "sent") means one resend
//! of the same message with the same Message-ID, which mail clients show
//! once. Losing a report would be worse.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapters::mail::{Email, MailError, Mailer};
use crate::clock::Clock;
use crate::model::{MailStatus, QueuedMail, RunId};
use crate::retry::{self, Backoff};
use crate::store::{HistoryStore, StoreError};

/// Tries per delivery before the message is left to the daemon.
pub const TRIES: u32 = 3;
/// Wait before the second try; doubled after each (jittered, see
/// [`crate::retry`]).
pub const BACKOFF: Duration = Duration::from_secs(2);
/// How long a sender holds a message before another may take it: more
/// than [`TRIES`] sends at the longest SMTP timeout.
pub const LEASE: Duration = Duration::from_secs(300);
/// A pending message's first wait before the daemon tries again, doubled
/// per attempt up to [`RESEND_MAX`].
pub const RESEND_AFTER: Duration = Duration::from_secs(60);
pub const RESEND_MAX: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Neither sent nor kept: the message is lost unless the caller keeps
    /// it.
    #[error("{mail}; and it could not be kept for a later try: {store}")]
    Lost { mail: MailError, store: StoreError },
    #[error("message {0}: {1}")]
    Message(String, String),
}

/// How a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted by the server, or written to the outbox: where.
    Sent(String),
    /// Kept in the store; the daemon tries again from `retry_at`.
    Pending {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// This Message-ID was queued before and is sent, or being sent by
    /// another sender: nothing done.
    AlreadySent,
}

/// What a resend pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resent {
    pub sent: u32,
    pub failed: u32,
    /// The messages sent, for a run by hand to say so.
    pub delivered: Vec<SentMail>,
}

/// A pending message a resend pass sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub message_id: String,
    pub subject: String,
    /// Where it went: the server, or the outbox.
    pub to: String,
}

/// Sends messages through a [`Mailer`], keeping them in the history store
/// until they are sent.
#[derive(Debug, Clone)]
pub struct Postman {
    store: Arc<dyn HistoryStore>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    tries: u32,
    backoff: Duration,
}

impl Postman {
    pub fn new(
        store: Arc<dyn HistoryStore>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Postman {
            store,
            mailer,
            clock,
            tries: TRIES,
            backoff: BACKOFF,
        }
    }

    /// Shorter waits between tries, for tests.
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    pub fn mailer(&self) -> &dyn Mailer {
        self.mailer.as_ref()
    }

    /// Keeps the message, then tries to send it [`TRIES`] times with
    /// backoff. A message already sent under its id is not sent again.
    pub async fn deliver(
        &self,
        email: &Email,
        job: Option<&str>,
        run: Option<RunId>,
    ) -> Result<Delivered, DeliveryError> {
        let raw = String::from_utf8(email.raw.clone()).map_err(|_| {
            DeliveryError::Message(email.message_id.clone(), "is not 7-bit text".into())
        })?;
        let now = self.clock.now();
        let queued = QueuedMail {
            message_id: email.message_id.clone(),
            subject: email.subject.clone(),
            recipients: email.recipients.clone(),
            raw,
            job: job.map(str::to_string),
            run_id: run,
            status: MailStatus::Pending,
            attempts: 0,
            last_error: None,
            created_at: now,
            // Held by this sender while it tries.
            next_attempt_at: now + LEASE,
            sent_at: None,
        };
        let kept = match self.store.queue_mail(&queued).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Queued before: send only if still pending and not held.
                if !self
                    .store
                    .claim_mail(&email.message_id, now, now + LEASE)
                    .await
                    .unwrap_or(false)
                {
                    return Ok(Delivered::AlreadySent);
                }
                Ok(())
            }
            // Better sent unrecorded than not sent: try anyway.
            Err(e) => Err(e),
        };
        let mut last = None;
        for i in 0..self.tries {
            if i > 0 {
                // No cancel here: the caller gives a delivery its time (a
                // report's run ends with its mail sent or kept).
                let _ = retry::wait(Backoff::doubling(self.backoff).delay(i), None).await;
            }
            match self.mailer.send(email).await {
                Ok(to) => {
                    if kept.is_ok()
                        && let Err(e) = self
                            .store
                            .mail_sent(&email.message_id, self.clock.now())
                            .await
                    {
                        tracing::warn!(message = %email.message_id, "sent, but not recorded as sent (it may be sent once more): {e}");
                    }
                    return Ok(Delivered::Sent(to));
                }
                Err(e) => {
                    tracing::warn!(message = %email.message_id, attempt = i + 1, "mail not sent: {e}");
                    last = Some(e);
                }
            }
        }
        let error = last.expect("at least one try");
        match kept {
            Err(store) => Err(DeliveryError::Lost { mail: error, store }),
            Ok(()) => {
                let retry_at = self.clock.now() + RESEND_AFTER;
                let text = error.to_string();
                if let Err(store) = self
                    .store
                    .mail_failed(&email.message_id, &text, self.tries, retry_at)
                    .await
                {
                    // Kept, with its lease: the daemon takes it when that ends.
                    tracing::warn!(message = %email.message_id, "cannot record the failed send: {store}");
                }
                Ok(Delivered::Pending {
                    error: text,
                    retry_at,
                })
            }
        }
    }

    /// Sends what is due: each message taken with a lease first, so a
    /// replica doing the same sends none of them twice.
    pub async fn resend_due(&self, limit: u32) -> Result<Resent, StoreError> {
        let now = self.clock.now();
        let mut done = Resent::default();
        for m in self.store.due_mail(now, limit).await? {
            if !self
                .store
                .claim_mail(&m.message_id, now, now + LEASE)
                .await?
            {
                continue;
            }
            let email = Email {
                message_id: m.message_id.clone(),
                subject: m.subject.clone(),
                recipients: m.recipients.clone(),
                raw: m.raw.into_bytes(),
            };
            match self.mailer.send(&email).await {
                Ok(to) => {
                    tracing::info!(message = %m.message_id, subject = %m.subject, "pending mail sent to {to}");
                    self.store
                        .mail_sent(&m.message_id, self.clock.now())
                        .await?;
                    done.sent += 1;
                    done.delivered.push(SentMail {
                        message_id: m.message_id.clone(),
                        subject: m.subject.clone(),
                        to,
                    });
                }
                Err(e) => {
                    let wait = resend_wait(m.attempts + 1);
                    tracing::warn!(message = %m.message_id, "pending mail still not sent (next try in {}): {e}", humantime::format_duration(wait));
                    self.store
                        .mail_failed(&m.message_id, &e.to_string(), 1, self.clock.now() + wait)
                        .await?;
                    done.failed += 1;
                }
            }
        }
        Ok(done)
    }
}

/// The wait after the `attempts`-th failed send: doubling from
/// [`RESEND_AFTER`], capped at [`RESEND_MAX`]. Not jittered: it is a "not
/// before" kept in the store, and the daemons' resend passes, a heartbeat
/// apart and leased, already spread the sends.
pub fn resend_wait(attempts: u32) -> Duration {
    Backoff::new(RESEND_AFTER, RESEND_MAX).ceiling(attempts.saturating_sub(TRIES) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_waits_double_and_stop_at_an_hour() {
        let cases = [
            (1, 60),
            (3, 60),
            (4, 120),
            (5, 240),
            (8, 1920),
            (9, 3600),
            (400, 3600),
        ];
        for (attempts, secs) in cases {
            assert_eq!(
                resend_wait(attempts),
                Duration::from_secs(secs),
                "{attempts}"
            );
        }
    }
}
