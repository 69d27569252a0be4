-- Messages until they are sent: a report is stored before the first try
-- and marked sent after, so a mail server that is down loses nothing and a
-- resend is the same message (same Message-ID).
CREATE TABLE mail_queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT    NOT NULL UNIQUE,
    subject         TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,
    raw             TEXT    NOT NULL,
    job             TEXT,
    run_id          INTEGER,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'sent')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at) WHERE status = 'pending';

-- Whether a job's failure has been told: repeats are not, and one
-- "recovered" message follows the first success.
CREATE TABLE notify_state (
    job     TEXT    PRIMARY KEY,
    failing INTEGER NOT NULL,
    run_id  INTEGER NOT NULL,
    since   INTEGER NOT NULL
);
