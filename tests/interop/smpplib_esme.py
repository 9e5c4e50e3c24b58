"""An independent ESME (Python smpplib) used by the interop tests.

Binds as a transceiver to the given SMSC, submits a GSM-7 message, a GSM-7 message with extension
characters, a UCS-2 message with an emoji and a three-part concatenated message, then waits for
every submit_sm_resp and every delivery receipt. Prints one JSON object with what it saw and exits
0 when everything arrived within the deadline, 1 otherwise.

Usage: smpplib_esme.py HOST PORT SYSTEM_ID PASSWORD [DEADLINE_SECONDS]
"""

import json
import socket
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.gsm

MESSAGES = [
    ("gsm7", "Hello from smpplib, GSM-7 @ £ $ ¥"),
    ("gsm7-ext", "Braces {and} [brackets] ~tilde~ euro € pipe | caret ^"),
    ("ucs2", "Привет 👋 مرحبا"),
    ("long", "Long message. " + "0123456789" * 40),
]


def main():
    host, port, system_id, password = sys.argv[1:5]
    deadline = time.monotonic() + (float(sys.argv[5]) if len(sys.argv) > 5 else 20.0)

    client = smpplib.client.Client(host, int(port), timeout=0.5, allow_unknown_opt_params=True)
    responses = {}  # sequence -> message_id
    receipts = []
    seq_to_label = {}

    def on_sent(pdu, **_kwargs):
        mid = pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else pdu.message_id
        responses[pdu.sequence] = {"message_id": mid, "status": pdu.status}

    def on_received(pdu, **_kwargs):
        receipted = getattr(pdu, "receipted_message_id", None)
        if isinstance(receipted, bytes):
            receipted = receipted.decode()
        text = pdu.short_message
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        receipts.append(
            {
                "esm_class": pdu.esm_class,
                "receipted_message_id": receipted,
                "message_state": getattr(pdu, "message_state", None),
                "text": text,
            }
        )

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_received)
    client.connect()
    client.bind_transceiver(system_id=system_id, password=password)

    submitted = 0
    for label, text in MESSAGES:
        parts, coding, esm_class = smpplib.gsm.make_parts(text)
        for part in parts:
            pdu = client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_INTL,
                source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                source_addr="447700900001",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr="447700900123",
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                registered_delivery=True,
            )
            seq_to_label[pdu.sequence] = label
            submitted += 1

    while time.monotonic() < deadline and (len(responses) < submitted or len(receipts) < submitted):
        try:
            client.read_once(auto_send_enquire_link=False)
        except socket.timeout:  # nothing to read yet: keep polling until the deadline
            pass

    client.unbind()
    client.disconnect()

    ok = len(responses) == submitted and len(receipts) == submitted
    print(
        json.dumps(
            {
                "ok": ok,
                "submitted": submitted,
                "responses": [dict(label=seq_to_label.get(s), **r) for s, r in sorted(responses.items())],
                "receipts": receipts,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
