"""Checks a running gateway against its own /openapi.json, with independent tools.

Usage: openapi_check.py BASE_URL TENANT_KEY OPERATOR_KEY

1. Fetches /openapi.json and validates it as an OpenAPI 3.1 document (openapi-spec-validator).
2. For every operation the document lists, makes the requests below (valid ones, then errors:
   no key, an unknown id, an unacceptable field, an unknown query parameter) and validates each
   request and each real response against the document (openapi-core): the status code must be
   documented, the media type and body must match its schema; errors must be Problem documents.
   An operation the document lists but this script has no request for fails the check, so a
   new endpoint gets exercised here too.

Prints one JSON object: {"operations": n, "checked": [[method, path, status], ...]}; exits 1
with the failures on stderr otherwise.
"""

import json
import sys
import time
import urllib.parse

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import validate

BASE, KEY, OPERATOR = sys.argv[1], sys.argv[2], sys.argv[3]
TIMEOUT = 10
SESSION = requests.Session()


def call(method, path, key=KEY, json_body=None, data=None, content_type=None, params=None):
    headers = {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if content_type:
        headers["Content-Type"] = content_type
    req = requests.Request(method.upper(), BASE + path, headers=headers, json=json_body,
                           data=data, params=params)
    resp = SESSION.send(req.prepare(), timeout=TIMEOUT, stream=path.startswith("/v1/events"))
    return req, resp


def main():
    spec = SESSION.get(BASE + "/openapi.json", timeout=TIMEOUT).json()
    validate(spec)  # raises on an invalid document
    # Media types openapi-core does not know by itself.
    config = Config(extra_media_type_deserializers={
        "application/problem+json": lambda b, **_params: json.loads(b),
        "text/csv": lambda b, **_params: b.decode() if isinstance(b, bytes) else b,
        "application/x-ndjson": lambda b, **_params: b.decode() if isinstance(b, bytes) else b,
    })
    api = OpenAPI.from_dict(spec, config=config)

    operations = {(m, p) for p, item in spec["paths"].items() for m in item
                  if m in ("get", "post", "put", "patch", "delete")}
    checked, failures, exercised = [], [], set()

    def check(method, template, path, expect, **kw):
        req, resp = call(method, path, **kw)
        where = f"{method.upper()} {path} -> {resp.status_code}"
        try:
            if resp.status_code != expect:
                raise AssertionError(f"expected {expect}: {resp.text[:300]}")
            if not path.startswith("/v1/events") or resp.status_code != 200:
                oreq = RequestsOpenAPIRequest(req)
                # A request made wrong on purpose (no key, an unknown parameter) is not
                # valid; its answer must still be the documented one.
                if expect < 400:
                    api.validate_request(oreq)
                api.validate_response(oreq, RequestsOpenAPIResponse(resp))
            if resp.status_code >= 400:
                ctype = resp.headers.get("content-type", "")
                body = resp.json()
                if not ctype.startswith("application/problem+json") or "code" not in body:
                    raise AssertionError(f"not a problem document: {ctype} {resp.text[:200]}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the run fails
            failures.append(f"{where}: {type(e).__name__}: {e}")
        exercised.add((method, template))
        checked.append([method, path, resp.status_code])
        return resp

    # Messages: one to look up, one scheduled to cancel.
    sent = check("post", "/v1/messages", "/v1/messages", 202,
                 json_body={"to": "+447911123456", "from": "Switchyard", "body": "Hello",
                            "tags": ["openapi"]}).json()
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    scheduled = check("post", "/v1/messages", "/v1/messages", 202,
                      json_body={"to": "+447911123457", "from": "Switchyard", "body": "Later",
                                 "scheduled_at": later}).json()
    flow = check("post", "/v1/messages", "/v1/messages", 202,
                 json_body={"mode": "cascade", "to": {"phone": "+447911123459"}, "body": "Flow",
                            "channels": [{"channel": "sms", "from": "Switchyard"}]}).json()
    # A binary SMS (hex octets, ports, a header IE, a message class), and one refused.
    binary = check("post", "/v1/messages", "/v1/messages", 202,
                   json_body={"to": "+447911123460", "from": "Switchyard", "encoding": "binary",
                              "body": "0106036ae2" * 40, "destination_port": 2948,
                              "source_port": 9200, "udh": "027000", "data_coding": 245}).json()
    check("post", "/v1/messages", "/v1/messages", 422,
          json_body={"to": "+447911123460", "from": "Switchyard", "encoding": "binary",
                     "body": "abc"})
    check("get", "/v1/messages/{id}", f"/v1/messages/{sent['id']}", 200)
    check("get", "/v1/messages/{id}", f"/v1/messages/{binary['id']}", 200)
    check("get", "/v1/messages/{id}", f"/v1/messages/{flow['id']}", 200)
    check("get", "/v1/messages", "/v1/messages?limit=2&tag=openapi&status=accepted", 200)
    check("get", "/v1/messages", "/v1/messages?limit=1", 200)
    check("post", "/v1/messages/{id}/cancel", f"/v1/messages/{scheduled['id']}/cancel", 200)
    batch = check("post", "/v1/messages/batch", "/v1/messages/batch", 202,
                  json_body={"from": "Switchyard", "body": "Hi {{name}}",
                             "recipients": [{"to": "+447911123458", "variables": {"name": "A"}},
                                            {"to": "not a number"}]}).json()
    check("get", "/v1/batches/{id}", f"/v1/batches/{batch['id']}", 200)
    check("post", "/v1/messages/batch", "/v1/messages/batch", 202,
          json_body={"from": "Switchyard", "encoding": "binary", "body": "c0de",
                     "destination_port": 5499, "data_coding": 4,
                     "recipients": [{"to": "+447911123461"}]})

    # Lists and exports.
    check("get", "/v1/calls", "/v1/calls?limit=5&disposition=answered", 200)
    check("get", "/v1/calls.csv", "/v1/calls.csv?since=2020-01-01T00:00:00Z", 200)
    check("get", "/v1/inbound", "/v1/inbound?limit=5", 200)

    # Analytics and the message log's exports, the tenant's and the operator's.
    check("get", "/v1/analytics/messages",
          "/v1/analytics/messages?bucket=hour&group_by=carrier", 200)
    check("get", "/v1/analytics/messages",
          "/v1/analytics/messages?since=2020-01-01T00:00:00Z&bucket=day", 422)
    check("get", "/v1/analytics/calls", "/v1/analytics/calls?bucket=hour", 200)
    check("get", "/v1/analytics/messages", "/v1/analytics/messages?group_by=tenant", 422)
    check("get", "/v1/operator/analytics/messages",
          "/v1/operator/analytics/messages?group_by=tenant", 200, key=OPERATOR)
    check("get", "/v1/operator/analytics/calls", "/v1/operator/analytics/calls", 200,
          key=OPERATOR)
    check("get", "/v1/messages.csv", "/v1/messages.csv", 200)
    check("get", "/v1/messages.ndjson", "/v1/messages.ndjson", 200)
    # No calls here: an empty NDJSON body has nothing to validate; its refusal has.
    check("get", "/v1/calls.ndjson", "/v1/calls.ndjson?since=yesterday", 422)
    check("get", "/v1/operator/messages.csv", "/v1/operator/messages.csv", 200, key=OPERATOR)
    check("get", "/v1/operator/messages.ndjson", "/v1/operator/messages.ndjson", 200,
          key=OPERATOR)
    check("get", "/v1/webhooks/dead-letters", "/v1/webhooks/dead-letters?limit=5", 200)
    check("post", "/v1/webhooks/dead-letters/replay", "/v1/webhooks/dead-letters/replay", 202)
    check("post", "/v1/webhooks/dead-letters/{id}/replay",
          "/v1/webhooks/dead-letters/dl_999999/replay", 404)

    # Opt-outs.
    check("post", "/v1/opt-outs", "/v1/opt-outs", 201, json_body={"number": "+447911000001"})
    check("post", "/v1/opt-outs/import", "/v1/opt-outs/import", 200,
          data="number,from,channel\n+447911000002\nnonsense\n123456789,,telegram\n",
          content_type="text/csv")
    check("post", "/v1/opt-outs", "/v1/opt-outs", 201,
          json_body={"number": "1254477777772919", "channel": "messenger"})
    check("post", "/v1/opt-outs", "/v1/opt-outs", 422,
          json_body={"number": "123456789", "channel": "telegram", "from": "+15550001111"})
    check("get", "/v1/opt-outs", "/v1/opt-outs?limit=10", 200)
    check("get", "/v1/opt-outs", "/v1/opt-outs?channel=messenger", 200)
    check("get", "/v1/opt-outs", "/v1/opt-outs?channel=email", 422)
    check("delete", "/v1/opt-outs/{number}",
          "/v1/opt-outs/" + urllib.parse.quote("+447911000001"), 204)
    check("delete", "/v1/opt-outs/{number}",
          "/v1/opt-outs/1254477777772919?channel=messenger", 204)
    check("delete", "/v1/opt-outs/{number}",
          "/v1/opt-outs/" + urllib.parse.quote("+447911000009"), 404)

    # Contacts, and a message to one.
    contact = check("post", "/v1/contacts", "/v1/contacts", 201,
                    json_body={"external_id": "openapi-1", "name": "Ana",
                               "phone": "+447911123460", "email": "ana@example.org",
                               "consent": {"sms": "granted", "email": {"state": "denied"}},
                               "attributes": {"tier": "gold"}}).json()
    check("post", "/v1/contacts", "/v1/contacts", 409, json_body={"external_id": "openapi-1"})
    check("post", "/v1/contacts", "/v1/contacts", 422, json_body={"phone": "12"})
    check("get", "/v1/contacts/{id}", f"/v1/contacts/{contact['id']}", 200)
    check("get", "/v1/contacts/{id}", "/v1/contacts/ct_0000000000000001", 404)
    check("patch", "/v1/contacts/{id}", f"/v1/contacts/{contact['id']}", 200,
          json_body={"name": None, "consent": {"whatsapp": "denied"}})
    check("patch", "/v1/contacts/{id}", f"/v1/contacts/{contact['id']}", 422,
          json_body={"email": "nope"})
    check("get", "/v1/contacts", "/v1/contacts?limit=2&address=%2B447911123460", 200)
    check("get", "/v1/contacts", "/v1/contacts?external_id=openapi-1", 200)
    check("get", "/v1/contacts", "/v1/contacts?cursor=nonsense", 422)
    check("post", "/v1/contacts/import", "/v1/contacts/import", 200,
          data="external_id,phone,consent_sms\nopenapi-2,+447911123461,granted\nopenapi-3,bad,\n",
          content_type="text/csv")
    check("post", "/v1/contacts/import", "/v1/contacts/import", 422,
          data="external_id,fax\n1,2\n", content_type="text/csv")
    check("post", "/v1/contacts/import", "/v1/contacts/import", 415,
          json_body={})
    check("post", "/v1/messages", "/v1/messages", 202,
          json_body={"to": {"contact": contact["id"]}, "from": "Switchyard", "body": "Hi"})
    check("post", "/v1/messages", "/v1/messages", 404,
          json_body={"to": {"contact": "ct_0000000000000001"}, "from": "Switchyard",
                     "body": "Hi"})
    check("delete", "/v1/contacts/{id}", f"/v1/contacts/{contact['id']}", 204)
    check("delete", "/v1/contacts/{id}", f"/v1/contacts/{contact['id']}", 404)

    # Routing, binds, providers, operations.
    check("get", "/v1/routes/explain", "/v1/routes/explain?to=%2B447911123456", 200)
    check("get", "/v1/routes/explain", "/v1/routes/explain?to=%2B447911123456&tenant=acme", 200,
          key=OPERATOR)
    check("get", "/v1/smpp/binds", "/v1/smpp/binds", 200)
    check("get", "/v1/providers/{carrier}/webhook",
          "/v1/providers/nosuch/webhook?hub.mode=subscribe", 404, key=None)
    check("post", "/v1/providers/{carrier}/webhook", "/v1/providers/nosuch/webhook", 404,
          key=None, json_body={})
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        check("get", path, path, 200, key=None)

    # Events: a stream cannot be validated as a whole; its refusals can.
    check("get", "/v1/events", "/v1/events?after=nonsense", 422)

    # Errors every operation shares.
    check("get", "/v1/messages/{id}", "/v1/messages/msg_doesnotexist", 404)
    check("post", "/v1/messages", "/v1/messages", 422,
          json_body={"to": "12", "from": "Switchyard", "body": "x"})
    check("get", "/v1/messages", "/v1/messages?limit=0", 422)
    check("get", "/v1/messages", "/v1/messages?colour=red", 400)
    for method, path in sorted(operations):
        op = spec["paths"][path][method]
        if op.get("security") and "{" not in path:
            check(method, path, path, 401, key=None,
                  json_body={} if method == "post" else None)

    missing = operations - exercised
    if missing:
        failures.append(f"operations with no request here: {sorted(missing)}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"operations": len(operations), "checked": checked}))


if __name__ == "__main__":
    main()
