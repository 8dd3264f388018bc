"""End to end: the lean delivery path as a user sees it. Subscribers that get the
same bytes for one event each get them signed with their own secret, and the log
detail of a successful attempt (whose record keeps no copy of the request) shows
exactly the request the receiver got, also after the webhook was edited."""
import base64
import hashlib
import hmac
import time

from hookd_test import Server, run
from receiver import RawReceiver, body_of, header_of, path_of

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}


def so_sig(secret, body):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def std_sig(secret, raw):
    msg = "%s.%s." % (header_of(raw, "webhook-id"), header_of(raw, "webhook-timestamp"))
    return "v1," + base64.b64encode(hmac.new(secret.encode(), msg.encode() + body_of(raw), hashlib.sha256).digest()).decode()


def create_webhook(s, url, name, secret, headers=None, props=None):
    body = {"Name": name, "Events": ["contact.created"], "TargetUrl": url, "Secret": secret, "State": "Active",
            "Type": "webhook"}
    if headers is not None:
        body["Headers"] = headers
    if props is not None:
        body["Properties"] = props
    r = s.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal_event(s, pk, data):
    r = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                  {"EventName": "contact.created", "PrimaryKey": pk, "Data": data})
    assert r.status == 204, r


def log_of(s, wid, n):
    deadline = time.time() + 20
    while time.time() < deadline:
        r = s.request("GET", "/api/v3/webhook/%d/log" % wid)
        assert r.status == 200, r
        if len(r.json()) >= n:
            return r.json()
        time.sleep(0.05)
    raise AssertionError("webhook %d: fewer than %d log records" % (wid, n))


def detail(s, wid, log_id):
    r = s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, log_id))
    assert r.status == 200, r
    return r.json()


def test_same_bytes_to_many_subscribers_each_signed_with_its_own_secret():
    rx = RawReceiver()
    try:
        with Server(env=LOOPBACK) as s:
            # One Name and one set of Properties: every subscriber gets the same body. Two share a secret.
            secrets = ["alpha", "bravo", "charlie", "delta", "alpha"]
            wids = [create_webhook(s, "%s/s%d" % (rx.url, i), "Shared", sec, props={"tier": "gold"})
                    for i, sec in enumerate(secrets)]
            signal_event(s, 7, {"name": "Ada", "note": "caf\u00e9 \u2713"})
            raws = {path_of(q): q for q in rx.wait_for(len(wids))}
            assert sorted(raws) == ["/s%d" % i for i in range(len(wids))], sorted(raws)
            bodies = {body_of(q) for q in raws.values()}
            assert len(bodies) == 1, bodies
            body = bodies.pop()
            assert b'"WebhookName":"Shared"' in body and b'"tier":"gold"' in body, body
            for i, sec in enumerate(secrets):
                q = raws["/s%d" % i]
                assert header_of(q, "X-SuperOffice-Signature") == so_sig(sec, body), (i, q)
                assert header_of(q, "webhook-signature") == std_sig(sec, q), (i, q)
                assert header_of(q, "webhook-id").endswith("_%d" % wids[i]), q
                # Another secret's signature is not this one.
                other = secrets[(i + 1) % 4]
                assert header_of(q, "X-SuperOffice-Signature") != so_sig(other, body)
            # Each success's log detail is the request its receiver got, byte for byte.
            for i, wid in enumerate(wids):
                rec = log_of(s, wid, 1)[0]
                assert rec["result"] == "200", rec
                d = detail(s, wid, rec["webhookLogId"])
                assert d["request"].encode() == raws["/s%d" % i], (d["request"], raws["/s%d" % i])
                assert d["response"] == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", d
    finally:
        rx.close()


def test_log_detail_of_a_success_is_what_the_receiver_got_also_after_edits():
    rx = RawReceiver()
    try:
        with Server(env=LOOPBACK) as s:
            wid = create_webhook(s, rx.url + "/in?x=1", "Before", "first-secret",
                                 headers={"X-Tenant": "t1", "X-Trace": "\u00e9t\u00e9"}, props={"env": "test", "n": 1})
            signal_event(s, 1, {"k": "v1"})
            first = rx.wait_for(1)[0]
            assert header_of(first, "X-Tenant") == "t1", first
            rec1 = log_of(s, wid, 1)[0]
            assert rec1["result"] == "200", rec1
            assert detail(s, wid, rec1["webhookLogId"])["request"].encode() == first

            # Everything the request was made of changes: headers, name, Properties, secret, URL.
            r = s.request("PATCH", "/api/v1/Webhook/%d" % wid,
                          {"Headers": {"X-Tenant": "t2", "X-Trace": None, "X-New": "yes"}, "Name": "After",
                           "Properties": {"env": "prod"}, "Secret": "second-secret", "TargetUrl": rx.url + "/moved"},
                          headers={"Content-Type": "application/merge-patch+json"})
            assert r.status == 200, r
            # The record of the first attempt still shows what was sent then.
            d1 = detail(s, wid, rec1["webhookLogId"])
            assert d1["request"].encode() == first, (d1["request"], first)
            assert d1["url"] == rx.url + "/in?x=1", d1

            # The next delivery carries the edits, and its record shows them.
            deadline = time.time() + 20
            while True:
                signal_event(s, 2, {"k": "v2"})
                second = rx.wait_for(2)[-1]
                if header_of(second, "X-Tenant") == "t2" or time.time() > deadline:
                    break
            assert header_of(second, "X-Tenant") == "t2" and header_of(second, "X-New") == "yes", second
            assert header_of(second, "X-Trace") is None, second
            assert b'"WebhookName":"After"' in body_of(second), second
            assert header_of(second, "X-SuperOffice-Signature") == so_sig("second-secret", body_of(second))
            recs = log_of(s, wid, 2)
            latest = recs[0]
            assert detail(s, wid, latest["webhookLogId"])["request"].encode() == second
            assert detail(s, wid, rec1["webhookLogId"])["request"].encode() == first
    finally:
        rx.close()


if __name__ == "__main__":
    run(globals())
