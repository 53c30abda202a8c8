"""An SMTP server (aiosmtpd) for one test, keeping every message it receives.

    smtp_server.py --port N --maildir DIR    (port 0 picks a free one)

Plain SMTP on 127.0.0.1, no TLS. AUTH PLAIN/LOGIN is offered and accepts any credentials
(none are required). Each message is stored as DIR/<n>.eml (exactly the bytes received,
n = 000001, 000002, ... in order of arrival) with a sidecar DIR/<n>.json:

    {"file": "<n>.eml", "mail_from": envelope sender, "rcpt_tos": [envelope recipients],
     "auth_user": login or null, "message_id", "from", "to", "subject" (decoded headers),
     "text": the text/plain body or null, "html": the text/html body or null}
    (bodies decoded, with LF line ends)

The .json is written last (atomically): a reader that lists *.json sees whole messages.
Prints `ready 127.0.0.1:<port>` on stdout once listening.
"""

import argparse
import asyncio
import email.parser
import email.policy
import json
import logging
import os

from aiosmtpd.smtp import SMTP, AuthResult


def body(message, subtype):
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content().replace("\r\n", "\n") if part is not None else None


def header(message, name):
    value = message[name]
    return str(value) if value is not None else None


def write_atomically(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


class Maildir:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = f"{self.count:06d}"
        raw = envelope.original_content or envelope.content
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
        auth = session.auth_data
        sidecar = {
            "file": f"{name}.eml",
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": auth.login.decode() if auth is not None else None,
            "message_id": header(message, "message-id"),
            "from": header(message, "from"),
            "to": header(message, "to"),
            "subject": header(message, "subject"),
            "text": body(message, "plain"),
            "html": body(message, "html"),
        }
        write_atomically(os.path.join(self.directory, f"{name}.eml"), raw)
        write_atomically(
            os.path.join(self.directory, f"{name}.json"),
            json.dumps(sidecar, indent=2).encode(),
        )
        return "250 Message accepted for delivery"


def accept_anyone(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=True, auth_data=auth_data)


async def serve(port, maildir):
    os.makedirs(maildir, exist_ok=True)
    handler = Maildir(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="localhost",
            authenticator=accept_anyone,
            auth_require_tls=False,
        ),
        "127.0.0.1",
        port,
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"ready 127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


def main():
    # aiosmtpd logs a warning about its own use of a deprecated attribute on every AUTH.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.maildir))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
