-- Messages until they are sent: a report is stored before the first try
-- and marked sent after, so a mail server that is down loses nothing and a
-- resend is the same message (same Message-ID).
CREATE TABLE mail_queue (
    id              BIGSERIAL   PRIMARY KEY,
    message_id      TEXT        NOT NULL UNIQUE,
    subject         TEXT        NOT NULL,
    recipients      TEXT        NOT NULL,
    raw             TEXT        NOT NULL,
    job             TEXT,
    run_id          BIGINT,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'sent')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at) WHERE status = 'pending';

-- Whether a job's failure has been told: repeats are not, and one
-- "recovered" message follows the first success.
CREATE TABLE notify_state (
    job     TEXT        PRIMARY KEY,
    failing BOOLEAN     NOT NULL,
    run_id  BIGINT      NOT NULL,
    since   TIMESTAMPTZ NOT NULL
);
