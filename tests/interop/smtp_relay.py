"""An SMTP relay for the email tests, on aiosmtpd (an independent SMTP implementation).

Usage: smtp_relay.py OUT_DIR [--starttls CERT KEY | --tls CERT KEY] [--auth USER:PASSWORD]
                     [--defer-all]

Listens on 127.0.0.1 (an ephemeral port, announced on stdout as "smtp relay listening on
HOST:PORT") and stores every message it accepts as OUT_DIR/<n>.eml (the DATA as received) with
OUT_DIR/<n>.json (envelope sender and recipients). Recipients script the answers:
  bounce@...  -> 550 5.1.1 at RCPT (a permanent refusal)
  busy@...    -> 451 4.3.0 at RCPT the first time, accepted after
  defer@...   -> 451 4.3.0 at RCPT, always
Every accepted message is answered "250 2.0.0 Ok: queued as SYn" (n its number). With
--defer-all every recipient is deferred (451), as by a relay that is over its limits.
With --starttls the relay requires STARTTLS before MAIL; with --tls it speaks TLS from the first
byte. With --auth it requires AUTH (only over TLS) with that login; a wrong one gets 535, and
every login attempt is counted in OUT_DIR/auth.log ("ok USER" or "bad USER").
"""

import argparse
import asyncio
import json
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult


class Relay:
    def __init__(self, out, defer_all=False):
        self.out = out
        self.defer_all = defer_all
        self.count = 0
        self.busy_seen = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if self.defer_all or local == "defer":
            return "451 4.3.0 Try again later"
        if local == "bounce":
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local == "busy" and address not in self.busy_seen:
            self.busy_seen.add(address)
            return "451 4.3.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        n = self.count
        with open(os.path.join(self.out, "%d.eml" % n), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(os.path.join(self.out, "%d.json" % n), "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        return "250 2.0.0 Ok: queued as SY%d" % n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth")
    parser.add_argument("--defer-all", action="store_true")
    args = parser.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    relay = Relay(out, args.defer_all)
    pair = args.starttls or args.tls
    context = None
    if pair:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pair[0], pair[1])
    options = {"hostname": "relay.test"}
    if args.starttls:
        options.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticate(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode()
            good = login == user and auth_data.password.decode() == password
            with open(os.path.join(out, "auth.log"), "a") as f:
                f.write("%s %s\n" % ("ok" if good else "bad", login))
            return AuthResult(success=good)

        options.update(
            authenticator=authenticate,
            auth_required=True,
            # With --tls the whole connection is TLS, which aiosmtpd does not see: AUTH is
            # offered from the start there.
            auth_require_tls=not args.tls,
        )
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(relay, **options),
            "127.0.0.1",
            0,
            ssl=context if args.tls else None,
        )
    )
    port = server.sockets[0].getsockname()[1]
    print("smtp relay listening on 127.0.0.1:%d" % port, flush=True)
    # Bounded: the tests stop it (by PID) long before.
    loop.run_until_complete(asyncio.sleep(300))


if __name__ == "__main__":
    main()
