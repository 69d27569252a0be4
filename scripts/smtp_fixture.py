#!/usr/bin/env python3
"""A real SMTP server for runbookd's tests (aiosmtpd), on loopback.

Every message it accepts goes into a Maildir, with the envelope recorded
as X-Envelope-From and X-Envelope-To headers so tests can check who it was
really sent to. It prints "ready PORT" on stdout once it listens, and stops
on SIGTERM or when its stdin closes (so a test that dies never leaves it).

  smtp_fixture.py --port N --maildir DIR [--auth USER:PASS]
                  [--starttls CERT KEY] [--smtps CERT KEY]

--auth        AUTH required: MAIL without it gets 530, a wrong password 535.
--starttls    STARTTLS offered and required before AUTH and MAIL.
--smtps       TLS from the first byte (port 465 style).
"""
import argparse
import asyncio
import mailbox
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class ToMaildir:
    def __init__(self, path):
        self.box = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server, session, envelope):
        head = (
            "X-Envelope-From: %s\r\nX-Envelope-To: %s\r\n"
            % (envelope.mail_from, ", ".join(envelope.rcpt_tos))
        ).encode()
        self.box.add(head + envelope.original_content)
        return "250 OK queued"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        # handled=False: aiosmtpd sends the reply (235, or 535 on failure).
        return AuthResult(success=ok, handled=False)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--auth")
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
    a = p.parse_args()

    kwargs = {}
    server_kwargs = {}
    if a.auth:
        user, password = a.auth.split(":", 1)
        kwargs.update(
            auth_required=True,
            authenticator=authenticator(user, password),
            # Plain AUTH on an unencrypted loopback connection is allowed
            # only when no TLS is configured (the plain-auth case).
            auth_require_tls=bool(a.starttls),
        )
    if a.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*a.starttls)
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.smtps:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*a.smtps)
        server_kwargs["ssl_context"] = ctx

    controller = Controller(
        ToMaildir(a.maildir),
        hostname="127.0.0.1",
        port=a.port,
        server_hostname="localhost",
        ready_timeout=10,
        **server_kwargs,
        **kwargs,
    )
    controller.start()
    print("ready %d" % a.port, flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
