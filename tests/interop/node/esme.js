// An independent ESME from another ecosystem (Node.js, the `smpp` package) binding to
// Switchyard's SMPP server as a tenant. Binds as a transceiver, submits GSM-7, UCS-2 with an
// emoji and a long text in message_payload, acknowledges every deliver_sm, and waits for every
// submit_sm_resp and receipt. Prints one JSON object; exits 0 when everything arrived in time.
//
// Usage: node esme.js HOST PORT SYSTEM_ID PASSWORD [DEADLINE_SECONDS]
'use strict';
const smpp = require('smpp');

const [host, port, systemId, password, deadlineS] = process.argv.slice(2);
const deadline = setTimeout(() => finish(false), 1000 * Number(deadlineS || 20));
const messages = [
  { label: 'gsm7', short_message: 'Hello from node-smpp, GSM-7 @ £ $' },
  { label: 'ucs2', short_message: 'Привет 👋 node' },
  { label: 'long', message_payload: 'Long message from node. ' + '0123456789'.repeat(30) },
];
const responses = [];
const receipts = [];

const session = smpp.connect({ url: `smpp://${host}:${port}`, auto_enquire_link_period: 0 });
session.on('error', (e) => { console.error(String(e)); finish(false); });
session.on('deliver_sm', (pdu) => {
  session.send(pdu.response());
  receipts.push({
    esm_class: pdu.esm_class,
    receipted_message_id: pdu.receipted_message_id || null,
    message_state: pdu.message_state === undefined ? null : pdu.message_state,
  });
  check();
});
session.bind_transceiver({ system_id: systemId, password }, (bind) => {
  if (bind.command_status !== 0) {
    console.error(`bind_transceiver: status ${bind.command_status}`);
    return finish(false);
  }
  for (const m of messages) {
    const { label, ...fields } = m;
    session.submit_sm({
      source_addr_ton: 1, source_addr_npi: 1, source_addr: '447700900001',
      dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: '447911123456',
      registered_delivery: 1, ...fields,
    }, (resp) => {
      responses.push({ label, status: resp.command_status, message_id: resp.message_id });
      check();
    });
  }
});

function check() {
  if (responses.length === messages.length && receipts.length === messages.length) finish(true);
}

let done = false;
function finish(ok) {
  if (done) return;
  done = true;
  clearTimeout(deadline);
  console.log(JSON.stringify({ ok, submitted: messages.length, responses, receipts }));
  session.close();
  process.exit(ok ? 0 : 1);
}
