"""End to end: failure visibility (attempt log and its pages, resend, failure emails, state events)."""
import base64
import hashlib
import hmac
import json
import signal
import socket
import time
import urllib.parse

from hookd_test import ADMIN_KEY, pg_expected_failure, run, Server, wait_until
from receiver import RawReceiver, Receiver, TestCA, header_of
from smtp_sink import SmtpSink

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32", "HOOKD_DELIVERY_RETRY_JITTER": "0"}
TEN_ATTEMPTS = ",".join(["0s"] + ["100ms"] * 9)


def env_with(sink=None, **kw):
    env = dict(LOOPBACK)
    if sink is not None:
        env.update(HOOKD_SMTP_HOST="127.0.0.1", HOOKD_SMTP_PORT=str(sink.port), HOOKD_SMTP_FROM="hookd@test.example")
    env.update({"HOOKD_" + k.upper(): v for k, v in kw.items()})
    return env


def create_webhook(s, url, events, name="Failing hook", secret="s3cret", errors_email="ops@example.com"):
    r = s.request("POST", "/api/v1/Webhook", {"Name": name, "Events": events, "TargetUrl": url, "Secret": secret,
                                              "State": "Active", "Type": "webhook", "ErrorsEmail": errors_email})
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal_event(s, name, pk, data=None, conn=None):
    r = s.request("POST", "/api/v1/Webhook/%s/%d" % (name, pk), data if data is not None else {"n": pk}, conn=conn)
    assert r.status == 204, r
    return r


def log_page(s, wid, **params):
    q = urllib.parse.urlencode(params)
    r = s.request("GET", "/api/v3/webhook/%d/log%s" % (wid, "?" + q if q else ""), auth="eci")
    assert r.status == 200, r
    return r


def page_headers(r):
    return {k: int(r.header(k)) for k in ("PageNumber", "PageSize", "TotalNumberOfRecords", "TotalPages")}


def wait_log_total(s, wid, n, timeout=30):
    return wait_until(lambda: int(log_page(s, wid, pageSize=1).header("TotalNumberOfRecords")) >= n,
                      timeout, "%d log records of webhook %d" % (n, wid))


def test_ten_failures_disable_mail_state_event_and_log():
    body_500 = ("".join("line %03d of the receiver's complaint\n" % i for i in range(120))).encode()
    response = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nX-Trace: t-42\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body_500)) + body_500
    kept = 1024
    rx = RawReceiver(response)
    env = None
    with SmtpSink() as sink, Receiver() as watcher:
        env = env_with(sink, delivery_retry_schedule=TEN_ATTEMPTS, delivery_max_response_bytes="1KiB")
        with Server(env=env) as s:
            wid = create_webhook(s, rx.url + "/hooks/in", ["contact.created"],
                                 errors_email="ops@example.com; dev@example.org")
            watch_id = create_webhook(s, watcher.url + "/state", ["webhook%d.errors" % wid], name="Watcher",
                                      secret="watch-secret", errors_email="")
            signal_event(s, "contact.created", 42, {"name": "Ada"})
            raws = rx.wait_for(10)

            # The webhook is disabled after the tenth failure in a row.
            wait_until(lambda: s.request("GET", "/api/v1/Webhook/%d" % wid).json()["State"] == "TooManyErrors",
                       what="TooManyErrors")
            event_uuid = header_of(raws[0], "X-SuperOffice-EventId")
            assert all(header_of(q, "X-SuperOffice-EventId") == event_uuid for q in raws)
            assert [header_of(q, "X-SuperOffice-Retry") for q in raws] == [str(i) for i in range(10)]

            # One mail, to both addresses, naming the webhook, the event id and the error.
            mails = sink.wait_for(1)
            m = mails[0]
            assert sorted(m.rcpt) == ["dev@example.org", "ops@example.com"], m.rcpt
            assert m.mail_from == "hookd@test.example"
            assert "webhook %d" % wid in m.subject and "Failing hook" in m.subject, m.subject
            assert "disabled" in m.subject
            text = m.text
            assert "Webhook:     %d \"Failing hook\"" % wid in text, text
            assert "Event id:    %s" % event_uuid in text, text
            assert "HTTP/1.1 500 Internal Server Error" in text, text
            assert "Result:      500" in text and "Attempt:     10" in text, text
            assert rx.url + "/hooks/in" in text
            assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in m.data, m.data
            for h in ("From", "To", "Date", "Message-ID"):
                assert m.header(h), h
            assert not sink.protocol_errors, sink.protocol_errors

            # The state event reaches its subscriber, signed like any delivery.
            got = watcher.wait_for(1)
            ev = got[0].json()
            assert ev["Event"] == "webhook.errors" and ev["PrimaryKey"] == wid, ev
            assert ev["Data"]["WebhookId"] == wid and "500" in ev["Data"]["Reason"], ev
            sig = base64.b64encode(hmac.new(b"watch-secret", got[0].body, hashlib.sha256).digest()).decode()
            assert got[0].header("X-SuperOffice-Signature") == sig

            # Every attempt is in the log: newest first, result "500", with its request and response.
            r = log_page(s, wid, pageSize=100)
            assert page_headers(r) == {"PageNumber": 1, "PageSize": 100, "TotalNumberOfRecords": 10, "TotalPages": 1}
            items = r.json()
            assert [it["attempt"] for it in items] == list(range(10, 0, -1)), items
            assert all(it["result"] == "500" and it["eventId"] == event_uuid for it in items)
            assert all(it["url"] == rx.url + "/hooks/in" for it in items)
            assert all(it["user"]["userCode"] == "admin" for it in items)
            assert items[0]["exhausted"] is True and items[1]["exhausted"] is False
            expected_response = response[:len(response) - len(body_500)] + body_500[:kept]
            for it in items:
                d = s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, it["webhookLogId"]), auth="eci")
                assert d.status == 200, d
                d = d.json()
                assert set(d) == {"request", "response", "result", "url", "user"}, d
                # Byte for byte what the receiver saw, and what it answered up to the kept size.
                assert d["request"].encode() == raws[it["attempt"] - 1], (d["request"], raws[it["attempt"] - 1])
                assert d["response"].encode() == expected_response, d["response"]
                assert d["result"] == "500" and d["url"] == rx.url + "/hooks/in"
                assert d["user"] == {"fullName": "Administrator", "userCode": "admin", "userId": 1}, d["user"]

            # The state event is an ordinary, logged delivery of the watcher.
            wait_log_total(s, watch_id, 1)
            wr = log_page(s, watch_id).json()
            assert [(it["eventName"], it["result"]) for it in wr] == [("webhook.errors", "200")], wr

            # No second mail: the disable mail covers the exhausted delivery too.
            time.sleep(0.5)
            assert len(sink.mails) == 1, sink.mails
            wait_until(lambda: "mailed about webhook %d" % wid in s.log(), what="the mail in hookd's log")
    rx.close()


def test_exhausted_mail_once_per_interval_and_no_mail_without_addresses():
    with SmtpSink() as sink, Receiver() as rx:
        rx.reply(status=503, body="busy")
        env = env_with(sink, delivery_retry_schedule="0s", delivery_disable_after="1000", smtp_min_interval="1h")
        with Server(env=env) as s:
            wid = create_webhook(s, rx.url + "/a", ["order.failed"], name="Orders")
            quiet = create_webhook(s, rx.url + "/b", ["order.failed"], name="Quiet", errors_email="")
            for pk in (1, 2, 3):
                signal_event(s, "order.failed", pk)
            wait_log_total(s, wid, 3)
            wait_log_total(s, quiet, 3)
            mails = sink.wait_for(1)
            time.sleep(0.7)
            mails = sink.mails
            assert len(mails) == 1, mails
            m = mails[0]
            assert m.rcpt == ["ops@example.com"]
            assert "webhook %d" % wid in m.subject and "failed" in m.subject, m.subject
            first_uuid = json.loads(rx.requests[0].body)["EventId"]
            uuids = {json.loads(q.body)["EventId"] for q in rx.requests}
            assert any(("Event id:    %s" % u) in m.text for u in uuids), m.text
            assert "Result:      503" in m.text and "HTTP/1.1 503" in m.text
            assert "will not be retried" in m.text
            assert first_uuid in uuids
            r = s.request("GET", "/api/v1/Webhook/%d" % wid)
            assert r.json()["State"] == "Active"


def test_mail_over_starttls_verified_with_the_ca_file():
    ca = TestCA()
    try:
        with SmtpSink(tls_cert=ca.server_cert, tls_key=ca.server_key) as sink, Receiver() as rx:
            rx.reply(status=500)
            env = env_with(sink, delivery_retry_schedule="0s", delivery_disable_after="1", smtp_starttls="on",
                           delivery_ca_file=ca.ca_file)
            with Server(env=env) as s:
                wid = create_webhook(s, rx.url, ["x.tls"])
                signal_event(s, "x.tls", 7)
                m = sink.wait_for(1)[0]
                assert m.tls, m.commands
                assert [c.split()[0] for c in m.commands][:3] == ["EHLO", "STARTTLS", "EHLO"], m.commands
                assert "webhook %d" % wid in m.subject
        # A relay without STARTTLS gets no mail when it is required; the failure is logged.
        with SmtpSink() as plain, Receiver() as rx:
            rx.reply(status=500)
            env = env_with(plain, delivery_retry_schedule="0s", delivery_disable_after="1", smtp_starttls="on",
                           delivery_ca_file=ca.ca_file)
            with Server(env=env) as s:
                create_webhook(s, rx.url, ["x.tls"])
                signal_event(s, "x.tls", 8)
                wait_until(lambda: "does not offer STARTTLS" in s.log(), what="the STARTTLS failure in the log")
                assert plain.mails == []
    finally:
        ca.cleanup()


def test_mail_in_flight_at_shutdown_is_abandoned_cleanly():
    # A relay that accepts the connection and never speaks: the mail is in flight when SIGTERM comes.
    tarpit = socket.socket()
    tarpit.bind(("127.0.0.1", 0))
    tarpit.listen(8)
    tarpit.settimeout(20)
    try:
        with Receiver() as rx:
            rx.reply(status=500)
            env = dict(LOOPBACK, HOOKD_SMTP_HOST="127.0.0.1", HOOKD_SMTP_PORT=str(tarpit.getsockname()[1]),
                       HOOKD_DELIVERY_RETRY_SCHEDULE="0s", HOOKD_DELIVERY_DISABLE_AFTER="1")
            s = Server(env=env)
            with s:
                create_webhook(s, rx.url, ["x.slow"])
                signal_event(s, "x.slow", 1)
                conn, _ = tarpit.accept()
                # Stopping must not wait for the relay, and leaves nothing behind (LeakSanitizer).
                assert s.stop() == 0
                conn.close()
                assert "mail about webhook 1 abandoned" in s.log(), s.log()[-2000:]
    finally:
        tarpit.close()


def test_log_paging_and_filters_on_1000_attempts():
    def answer(req):
        pk = req.json()["PrimaryKey"]
        return None if pk % 10 >= 2 else __import__("receiver").Reply(status=500 if pk % 10 == 0 else 404)

    with Receiver(handler=answer) as rx:
        rx.reply(status=200)
        env = env_with(None, delivery_retry_schedule="0s", delivery_disable_after="100000")
        with Server(env=env) as s:
            wid = create_webhook(s, rx.url, ["bulk.event"], name="Bulk")
            conn = s.connection()
            try:
                for pk in range(1000):
                    signal_event(s, "bulk.event", pk, conn=conn)
            finally:
                conn.close()
            wait_log_total(s, wid, 1000, timeout=60)

            everything = log_page(s, wid, pageSize=1000)
            assert page_headers(everything) == {"PageNumber": 1, "PageSize": 1000, "TotalNumberOfRecords": 1000,
                                                "TotalPages": 1}
            all_items = everything.json()
            ids = [it["webhookLogId"] for it in all_items]
            assert ids == sorted(ids, reverse=True) and len(set(ids)) == 1000

            # Default page: 100 newest.
            r = log_page(s, wid)
            assert page_headers(r) == {"PageNumber": 1, "PageSize": 100, "TotalNumberOfRecords": 1000,
                                       "TotalPages": 10}
            assert [it["webhookLogId"] for it in r.json()] == ids[:100]
            seen = []
            for n in range(1, 11):
                r = log_page(s, wid, pageSize=100, pageNumber=n)
                assert page_headers(r) == {"PageNumber": n, "PageSize": 100, "TotalNumberOfRecords": 1000,
                                           "TotalPages": 10}
                seen += [it["webhookLogId"] for it in r.json()]
            assert seen == ids
            r = log_page(s, wid, pageSize=300, pageNumber=4)
            assert page_headers(r) == {"PageNumber": 4, "PageSize": 300, "TotalNumberOfRecords": 1000,
                                       "TotalPages": 4}
            assert [it["webhookLogId"] for it in r.json()] == ids[900:]
            r = log_page(s, wid, pageSize=7, pageNumber=500)
            assert r.json() == [] and page_headers(r)["TotalPages"] == 143

            # Filters on result.
            def check(flt, expect, page_size=1000, page_number=1):
                r = log_page(s, wid, pageSize=page_size, pageNumber=page_number, filter=flt)
                want = [it["webhookLogId"] for it in all_items if expect(it)]
                h = page_headers(r)
                assert h["TotalNumberOfRecords"] == len(want), (flt, h, len(want))
                assert h["TotalPages"] == (len(want) + page_size - 1) // page_size, (flt, h)
                start = (page_number - 1) * page_size
                assert [it["webhookLogId"] for it in r.json()] == want[start:start + page_size], flt
                return len(want)

            assert check("result equals '500'", lambda it: it["result"] == "500") == 100
            assert check("result equals 404", lambda it: it["result"] == "404") == 100
            assert check("result not equals '200'", lambda it: it["result"] != "200") == 200
            assert check("result one of '404','500'", lambda it: it["result"] in ("404", "500")) == 200
            assert check("result greater than or equal 400", lambda it: int(it["result"]) >= 400) == 200
            assert check("result between 200 and 299", lambda it: it["result"] == "200") == 800
            assert check("result equals '500'", lambda it: it["result"] == "500", page_size=30, page_number=4) == 100

            # Filters on time, against the log's own dates (millisecond precision is exact).
            dates = sorted({it["logDate"] for it in all_items})
            mid, q1, q3 = dates[len(dates) // 2], dates[len(dates) // 4], dates[3 * len(dates) // 4]
            assert check("logDate greater than '%s'" % mid, lambda it: it["logDate"] > mid) > 0
            assert check("logDate less than or equal '%s'" % mid, lambda it: it["logDate"] <= mid) > 0
            assert check("logDate between '%s' and '%s'" % (q1, q3), lambda it: q1 <= it["logDate"] <= q3) > 0
            assert check("logDate equals '%s'" % mid, lambda it: it["logDate"] == mid) >= 1
            day = mid[:10]
            assert check("logDate equals %s" % day, lambda it: it["logDate"][:10] == day) >= 1
            assert check("result equals '500' and logDate greater than or equal '%s'" % mid,
                         lambda it: it["result"] == "500" and it["logDate"] >= mid) >= 0

            # Bad input is a 400 naming what is wrong; unknown webhooks and records are 404.
            for q in ("pageSize=0", "pageSize=1001", "pageNumber=0", "pageSize=x",
                      "filter=" + urllib.parse.quote("color equals red"),
                      "filter=" + urllib.parse.quote("logDate greater than yesterday")):
                r = s.request("GET", "/api/v3/webhook/%d/log?%s" % (wid, q), auth="eci")
                assert r.status == 400, (q, r)
                assert "status" in r.json() and "message" in r.json(), r
            assert s.request("GET", "/api/v3/webhook/999/log", auth="eci").status == 404
            assert s.request("GET", "/api/v3/webhook/%d/log" % (wid + 2 ** 32), auth="eci").status == 404
            assert s.request("GET", "/api/v3/webhook/%d/log/99999/detail" % wid, auth="eci").status == 404


def test_resend_delivers_the_event_again_with_the_same_webhook_id():
    with Receiver() as rx:
        env = env_with(None)
        with Server(env=env) as s:
            wid = create_webhook(s, rx.url + "/r", ["invoice.paid"], secret="whsec_" +
                                 base64.b64encode(b"k" * 32).decode())
            signal_event(s, "invoice.paid", 5, {"amount": 12})
            first = rx.wait_for(1)[0]
            wait_log_total(s, wid, 1)
            log_id = log_page(s, wid).json()[0]["webhookLogId"]
            r = s.request("POST", "/api/v3/webhook/%d/log/%d/resend" % (wid, log_id), auth="eci")
            assert r.status == 202, r
            assert r.json()["eventId"] == first.json()["EventId"] and r.json()["webhookLogId"] == log_id
            second = rx.wait_for(2)[1]
            assert second.header("webhook-id") == first.header("webhook-id")
            assert second.header("X-SuperOffice-EventId") == first.header("X-SuperOffice-EventId")
            assert second.body == first.body
            assert second.header("X-SuperOffice-Signature") == first.header("X-SuperOffice-Signature")
            wait_log_total(s, wid, 2)
            items = log_page(s, wid).json()
            assert [it["eventId"] for it in items] == [first.json()["EventId"]] * 2
            assert all(it["result"] == "200" for it in items)
            # Resend needs Manage; unknown records are 404.
            s.cli("user", "add", "--code", "viewer", "--name", "Viewer", "--perm", "ApplicationSettings:View")
            viewer = s.cli("key", "create", "--user", "viewer").stdout.strip()
            r = s.request("POST", "/api/v3/webhook/%d/log/%d/resend" % (wid, log_id), key=viewer, auth="eci")
            assert r.status == 403, r
            assert log_page(s, wid).status == 200
            r = s.request("POST", "/api/v3/webhook/%d/log/424242/resend" % wid, auth="eci")
            assert r.status == 404, r
            time.sleep(0.3)
            assert len(rx.requests) == 2


@pg_expected_failure("the PostgreSQL engine drops the attempt log by whole UTC day partitions: a record older than a retention of seconds stays until its day ends")
def test_pruning_removes_old_records_while_ingest_continues():
    def detail_status(s, wid, log_id):
        return s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, log_id), auth="eci").status

    with Receiver() as rx:
        env = env_with(None, delivery_log_retention="2s", delivery_prune_interval="200ms")
        with Server(env=env) as s:
            wid = create_webhook(s, rx.url, ["p.event"], name="Pruned")
            conn = s.connection()
            statuses = []
            first = None  # ids listed in the first look
            gone = False
            try:
                # Signal steadily (every one must be answered 204) while the
                # pruner deletes what is older than two seconds.
                pk = 0
                deadline = time.time() + 40
                while time.time() < deadline:
                    r = s.request("POST", "/api/v1/Webhook/p.event/%d" % pk, {"n": pk}, conn=conn)
                    statuses.append(r.status)
                    pk += 1
                    if pk % 25:
                        continue
                    if first is None:
                        first = [it["webhookLogId"] for it in log_page(s, wid, pageSize=1000).json()]
                        first = first or None
                    elif pk >= 400 and detail_status(s, wid, min(first)) == 404 and \
                            detail_status(s, wid, max(first)) == 404:
                        gone = True
                        break
            finally:
                conn.close()
            assert set(statuses) == {204}, set(statuses)
            assert gone, "records older than the retention were not pruned"
            # Records were removed (fewer than the attempts made) and what is
            # left is the newest part of the log, still readable in full.
            r = log_page(s, wid, pageSize=10)
            total = int(r.header("TotalNumberOfRecords"))
            assert 0 < total < pk, (total, pk)
            newest = r.json()[0]["webhookLogId"]
            assert newest > max(first)
            r = s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, newest), auth="eci")
            assert r.status == 200 and r.json()["result"] == "200", r


if __name__ == "__main__":
    run(globals())
