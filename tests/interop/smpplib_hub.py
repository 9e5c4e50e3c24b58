"""An independent ESME (Python smpplib) binding to Switchyard's SMPP server as a tenant.

Submits a GSM-7 message, a GSM-7 message with extension characters, a UCS-2 message with an
emoji and a long message (in message_payload, or cut into UDH parts by smpplib), then waits for
every submit_sm_resp and every delivery receipt, acknowledging each receipt. Prints one JSON object with what it saw and exits 0
when everything arrived within the deadline, 1 otherwise.

Usage: smpplib_hub.py HOST PORT SYSTEM_ID PASSWORD MODE [DEADLINE_SECONDS]
  MODE trx:     one transceiver bind submits and receives the receipts.
  MODE rx-tx:   a transmitter bind submits; a separate receiver bind gets the receipts.
  MODE trx-udh: as trx, with the long message and the UCS-2 one cut into UDH parts.
With SMPP_TLS_CA set (a PEM CA file), connects over TLS and verifies the server's chain.
"""

import json
import os
import socket
import ssl
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


def text(value):
    return value.decode("latin-1") if isinstance(value, bytes) else value


def main():
    host, port, system_id, password, mode = sys.argv[1:6]
    deadline = time.monotonic() + (float(sys.argv[6]) if len(sys.argv) > 6 else 20.0)

    responses = {}  # sequence -> {message_id, status}
    receipts = []
    seq_to_label = {}

    def on_sent(pdu, **_kwargs):
        responses[pdu.sequence] = {"message_id": text(pdu.message_id), "status": pdu.status}

    def on_received(pdu, **_kwargs):
        receipts.append(
            {
                "esm_class": pdu.esm_class,
                "receipted_message_id": text(getattr(pdu, "receipted_message_id", None)),
                "message_state": getattr(pdu, "message_state", None),
                "text": text(pdu.short_message),
            }
        )

    def client():
        tls = None
        if os.environ.get("SMPP_TLS_CA"):
            tls = ssl.create_default_context(cafile=os.environ["SMPP_TLS_CA"])
            # smpplib wraps the socket without a server name; the chain is still verified.
            tls.check_hostname = False
        c = smpplib.client.Client(
            host, int(port), timeout=0.2, allow_unknown_opt_params=True, ssl_context=tls
        )
        c.set_message_sent_handler(on_sent)
        c.set_message_received_handler(on_received)
        c.connect()
        return c

    tx = client()
    if mode in ("trx", "trx-udh"):
        tx.bind_transceiver(system_id=system_id, password=password)
        clients = [tx]
    else:
        tx.bind_transmitter(system_id=system_id, password=password)
        rx = client()
        rx.bind_receiver(system_id=system_id, password=password)
        clients = [tx, rx]

    submitted = 0
    for label, body in MESSAGES:
        if mode == "trx-udh" and label in ("long", "ucs2"):
            parts, coding, esm_class = smpplib.gsm.make_parts(body * (5 if label == "ucs2" else 1))
            for part in parts:
                pdu = tx.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                    source_addr="447700900001",
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                    destination_addr="447911123456",
                    short_message=part,
                    data_coding=coding,
                    esm_class=esm_class,
                    registered_delivery=True,
                )
                seq_to_label[pdu.sequence] = label
                submitted += 1
            continue
        ucs2 = any(ord(ch) > 0xFF for ch in body)
        encoded = body.encode("utf-16-be") if ucs2 else smpplib.gsm.gsm_encode(body)
        fields = dict(
            source_addr_ton=smpplib.consts.SMPP_TON_INTL,
            source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            source_addr="447700900001",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr="447911123456",
            data_coding=smpplib.consts.SMPP_ENCODING_ISO10646 if ucs2 else smpplib.consts.SMPP_ENCODING_DEFAULT,
            registered_delivery=True,
        )
        if len(encoded) > 140:
            pdu = tx.send_message(short_message=b"", message_payload=encoded, **fields)
        else:
            pdu = tx.send_message(short_message=encoded, **fields)
        seq_to_label[pdu.sequence] = label
        submitted += 1

    while time.monotonic() < deadline and (len(responses) < submitted or len(receipts) < submitted):
        for c in clients:
            try:
                c.read_once(auto_send_enquire_link=False)
            except socket.timeout:  # nothing to read yet: keep polling until the deadline
                pass

    for c in clients:
        c.unbind()
        c.disconnect()

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
