"""An SMTP relay for the email tests, on aiosmtpd (an independent SMTP implementation).

Usage: smtp_relay.py OUT_DIR

Listens on 127.0.0.1 (an ephemeral port, announced on stdout as "smtp relay listening on
HOST:PORT") and stores every message it accepts as OUT_DIR/<n>.eml (the DATA as received) with
OUT_DIR/<n>.json (envelope sender and recipients). Recipients script the answers:
  bounce@...  -> 550 5.1.1 at RCPT (a permanent refusal)
  busy@...    -> 451 4.3.0 at RCPT the first time, accepted after
Every accepted message is answered "250 2.0.0 Ok: queued as SYn" (n its number).
"""

import asyncio
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Relay:
    def __init__(self, out):
        self.out = out
        self.count = 0
        self.busy_seen = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
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
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    relay = Relay(out)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(relay, hostname="relay.test"), "127.0.0.1", 0)
    )
    port = server.sockets[0].getsockname()[1]
    print("smtp relay listening on 127.0.0.1:%d" % port, flush=True)
    # Bounded: the tests stop it (by PID) long before.
    loop.run_until_complete(asyncio.sleep(300))


if __name__ == "__main__":
    main()
