-- Daemons LISTEN on these channels, so a queued request is taken and a
-- cancel reaches its run at once, whoever wrote the row (any CLI, any
-- version). A notification is delivered at commit; one lost (a daemon
-- reconnecting) is made up for by polling, which stays.
CREATE FUNCTION runbookd_notify_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('runbookd_requests', NEW.id::text);
    RETURN NEW;
END $$;
CREATE TRIGGER runbookd_request_queued AFTER INSERT ON run_requests
    FOR EACH ROW EXECUTE FUNCTION runbookd_notify_request();

CREATE FUNCTION runbookd_notify_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('runbookd_cancels', NEW.id::text);
    RETURN NEW;
END $$;
CREATE TRIGGER runbookd_cancel_requested AFTER UPDATE OF cancel_requested ON runs
    FOR EACH ROW WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested)
    EXECUTE FUNCTION runbookd_notify_cancel();
