"""End to end: what the delivery engine records and logs about an attempt: the
URL an attempt went to (not the webhook's URL of later), and a refusal by the
SSRF guard named in the server log."""
import time

from hookd_test import run, Server, wait_until
from receiver import Receiver, Reply

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}


def create_webhook(s, url, events, name="hook"):
    body = {"Name": name, "Events": events, "TargetUrl": url, "Secret": "s3cret", "State": "Active"}
    r = s.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal_event(s, name, pk=1):
    r = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", {"EventName": name, "PrimaryKey": pk, "Data": {}})
    assert r.status == 204, r


def attempts(s, wid):
    r = s.request("GET", "/api/v3/webhook/%d/log" % wid)
    assert r.status == 200, r
    return r.json()


def test_an_attempt_record_keeps_the_url_it_was_sent_to():
    with Receiver() as rx, Server(env=LOOPBACK) as s:
        # The first request is answered after 3 s: the webhook's URL changes meanwhile (and the engine
        # reads the webhook again at least once a second).
        rx.queue(Reply(status=200, delay=3))
        old, new = rx.url + "/old", rx.url + "/new"
        wid = create_webhook(s, old, ["contact.created"])
        signal_event(s, "contact.created", 1)
        first = rx.wait_for(1)[0]
        assert first.path == "/old", first.path
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wid, {"TargetUrl": new},
                      headers={"Content-Type": "application/merge-patch+json"})
        assert r.status == 200 and r.json()["TargetUrl"] == new, r
        log = wait_until(lambda: attempts(s, wid), what="the first attempt's record")
        assert len(log) == 1 and log[0]["result"] == "200", log
        assert log[0]["url"] == old, log[0]
        detail = s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, log[0]["webhookLogId"])).json()
        assert detail["url"] == old and detail["request"].startswith("POST /old "), detail
        # The next delivery goes to the new URL, and its record says so.
        signal_event(s, "contact.created", 2)
        assert rx.wait_for(2)[1].path == "/new"
        log = wait_until(lambda: len(attempts(s, wid)) == 2 and attempts(s, wid), what="the second record")
        assert [a["url"] for a in log] == [new, old], log


def test_an_ssrf_refusal_of_a_delivery_is_logged_once_per_webhook():
    # No allow_targets: a name that resolves to loopback is refused when the delivery connects.
    env = {"HOOKD_DELIVERY_RETRY_SCHEDULE": "0s,1s,1s", "HOOKD_DELIVERY_RETRY_JITTER": "0"}
    with Receiver() as rx, Server(env=env) as s:
        wid = create_webhook(s, "http://localhost:%d/hook" % rx.port, ["contact.created"])
        signal_event(s, "contact.created", 1)
        # Every attempt is refused (the third is the last); none reached the receiver.
        log = wait_until(lambda: len(attempts(s, wid)) == 3 and attempts(s, wid), what="three attempts")
        assert all(a["result"] == "0" and "SSRF" in a["error"] for a in log), log
        assert rx.requests == []
        lines = [l for l in s.log().splitlines() if "by the SSRF guard" in l]
        assert len(lines) == 1, lines
        line = lines[0]
        assert " warn " in line and ("webhook %d:" % wid) in line and "localhost" in line, line
        assert ("127.0.0.1" in line or "::1" in line) and "loopback" in line, line


if __name__ == "__main__":
    run(globals())
