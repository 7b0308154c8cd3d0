"""A real SMTP submission server for tests/alerts_email.rs (aiosmtpd, on 127.0.0.1).

Usage: smtp_server.py CERT KEY USER PASSWORD [MODE]

MODE `starttls` (the default): STARTTLS is required before AUTH (PLAIN or LOGIN) and AUTH
before MAIL. `implicit`: TLS from the first byte (port 465 style), AUTH required. `none`: a
plain loopback relay, no TLS and no AUTH. Prints one JSON
line per event on stdout: {"kind": "ready", "port": N} once listening, {"kind": "auth", ...}
per login attempt, and {"kind": "mail", ...} per message received, parsed with Python's
email package (the subject decoded from RFC 2047, the body decoded from its transfer
encoding) next to the raw Subject header as sent.
"""

import email
import email.policy
import json
import logging
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd 1.4 logs a warning about its own use of Session.login_data on every login.
logging.getLogger("mail.log").setLevel(logging.ERROR)

CERT, KEY, USER, PASSWORD = sys.argv[1:5]
MODE = sys.argv[5] if len(sys.argv) > 5 else "starttls"


def say(obj):
    print(json.dumps(obj, ensure_ascii=False), flush=True)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        raw = email.message_from_bytes(envelope.content, policy=email.policy.compat32)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        say(
            {
                "kind": "mail",
                # The transport itself: after STARTTLS, or TLS from the first byte.
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "authenticated": bool(session.authenticated),
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "raw_subject": str(raw["Subject"]),
                "subject": str(msg["subject"]),
                "from": str(msg["from"]),
                "to": str(msg["to"]),
                "date": str(msg["date"]),
                "message_id": str(msg["message-id"]),
                "content_type": msg.get_content_type(),
                "charset": msg.get_content_charset(),
                "body": msg.get_content(),
            }
        )
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    say({"kind": "auth", "mechanism": mechanism, "ok": ok, "tls": session.ssl is not None})
    # handled=False: aiosmtpd itself answers "535 5.7.8" to a refused login.
    return AuthResult(success=ok, handled=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(CERT, KEY)
    port = free_port()
    auth = dict(auth_required=True, authenticator=authenticator)
    if MODE == "implicit":
        # TLS from the first byte: the connection is encrypted before AUTH is offered.
        extra = dict(ssl_context=ctx, auth_require_tls=False, **auth)
    elif MODE == "none":
        extra = {}
    else:
        extra = dict(tls_context=ctx, require_starttls=True, auth_require_tls=True, **auth)
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **extra)
    controller.start()
    say({"kind": "ready", "port": port})
    threading.Event().wait()


if __name__ == "__main__":
    main()
