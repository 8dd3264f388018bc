"""End to end: structured logs. [log] format = json writes one JSON object per line;
[log] deliveries picks which delivery attempts get a line with their fields."""
import json
import re
import time

from hookd_test import Server, run
from receiver import Receiver
from test_delivery import LOOPBACK, create_webhook, signal_event, wait_until


def json_lines(s):
    lines = [l for l in s.log().splitlines() if l.strip()]
    return [json.loads(l) for l in lines]  # every line must parse


def test_json_lines_with_every_delivery_attempt():
    env = dict(LOOPBACK, HOOKD_LOG_FORMAT="json", HOOKD_LOG_DELIVERIES="all",
               HOOKD_DELIVERY_RETRY_SCHEDULE="0s")
    with Server(env=env) as s, Receiver() as ok, Receiver() as bad:
        bad.reply(status=500)
        good_id = create_webhook(s, ok.url, ["l.x"], name="good")
        bad_id = create_webhook(s, bad.url, ["l.x"], name="bad")
        res = signal_event(s, "l.x", pk=5)
        assert res.status == 204
        event_id = res.header("Hookd-Event-Id")
        ok.wait_for(1)
        bad.wait_for(1)

        def deliveries():
            d = [l for l in json_lines(s) if l["msg"].startswith("delivery ")]
            return d if len(d) == 2 else None
        lines = wait_until(deliveries, what="two delivery lines")
        for l in json_lines(s):
            assert set(l) >= {"time", "level", "msg"}, l
            assert l["level"] in ("debug", "info", "warn", "error")
        by_webhook = {l["webhook_id"]: l for l in lines}
        g, b = by_webhook[good_id], by_webhook[bad_id]
        assert g["level"] == "info" and g["msg"] == "delivery succeeded" and g["status"] == 200, g
        assert g["event_id"] == event_id and g["event"] == "l.x" and g["attempt"] == 1 and g["ms"] >= 0
        assert b["level"] == "warn" and b["status"] == 500 and b["msg"] == "delivery failed, no retry left", b
        assert "500" in b["error"] and b["event_id"] == event_id


def test_text_lines_log_failures_by_default():
    env = dict(LOOPBACK, HOOKD_DELIVERY_RETRY_SCHEDULE="0s,0s")
    with Server(env=env) as s, Receiver() as ok, Receiver() as bad:
        bad.reply(status=503)
        create_webhook(s, ok.url, ["l.y"], name="good")
        bad_id = create_webhook(s, bad.url, ["l.y"], name="bad")
        assert signal_event(s, "l.y").status == 204
        ok.wait_for(1)
        bad.wait_for(2)
        wait_until(lambda: s.log().count(" delivery failed") == 2, what="two failure lines")
        time.sleep(0.3)
        text = s.log()
        assert "delivery succeeded" not in text
        first = [l for l in text.splitlines() if "delivery failed webhook_id=%d " % bad_id in l]
        assert len(first) == 1 and " warn  " in first[0] and " attempt=1 status=503 " in first[0], first
        assert any("delivery failed, no retry left webhook_id=%d " % bad_id in l and " attempt=2 " in l
                   for l in text.splitlines())


def test_deliveries_off_and_bad_values_refused():
    with Server(env=dict(LOOPBACK, HOOKD_LOG_DELIVERIES="off", HOOKD_DELIVERY_RETRY_SCHEDULE="0s")) as s, \
            Receiver() as bad:
        bad.reply(status=500)
        create_webhook(s, bad.url, ["l.z"])
        assert signal_event(s, "l.z").status == 204
        bad.wait_for(1)
        wait_until(lambda: "exhausted" in s.log(), what="the exhausted warning")
        assert "delivery failed" not in s.log()
    for key, value in (("HOOKD_LOG_FORMAT", "xml"), ("HOOKD_LOG_DELIVERIES", "some")):
        srv = Server(env={key: value})
        try:
            p = srv.cli("user", "list", check=False)
            assert p.returncode == 2 and key in (p.stdout + p.stderr), (key, p.stdout, p.stderr)
        finally:
            srv.cleanup()


def test_request_ids_echoed_and_logged():
    env = {"HOOKD_SERVER_ACCESS_LOG": "on", "HOOKD_LOG_FORMAT": "json"}
    with Server(env=env) as s:
        mine = s.request("GET", "/api/v1/Webhook", headers={"X-Request-Id": "lb-7f3a:9.x_y"})
        assert mine.status == 200 and mine.header("X-Request-Id") == "lb-7f3a:9.x_y", mine.headers
        made = [s.request("GET", "/api/v1/Webhook").header("X-Request-Id") for _ in range(2)]
        assert all(re.match(r"^[0-9a-f]{16}$", m or "") for m in made) and made[0] != made[1], made
        for bad in ("has space", "x" * 65, "quote\"d"):
            r = s.request("GET", "/api/v1/Webhook", headers={"X-Request-Id": bad})
            got = r.header("X-Request-Id")
            assert got != bad and re.match(r"^[0-9a-f]{16}$", got or ""), (bad, got)
        # An answer the API makes before the body (401) carries one too.
        r = s.request("POST", "/api/v1/Webhook", {"Name": "x"}, key="wrong", headers={"X-Request-Id": "req-401"})
        assert r.status == 401 and r.header("X-Request-Id") == "req-401"

        def access(rid):
            return [l for l in json_lines(s) if l["msg"].startswith("access ") and l.get("request_id") == rid]
        wait_until(lambda: access("lb-7f3a:9.x_y") and access(made[1]) and access("req-401"),
                   what="access lines with their request ids")
        assert " 401 " in access("req-401")[0]["msg"]


if __name__ == "__main__":
    run(globals())
