"""End to end: SignalEvent and the REST signal form give the caller the event's id
(Hookd-Event-Id), the same EventId its deliveries carry and the attempt log shows."""
import json
import re
import time

from hookd_test import Server, run
from receiver import Receiver
from test_delivery import LOOPBACK, create_webhook, signal_event, wait_until

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def logged_event_ids(s, wid):
    r = s.request("GET", "/api/v3/webhook/%d/log" % wid, auth="eci")
    assert r.status == 200, r
    return [it["eventId"] for it in r.json()]


def test_signal_answers_with_the_event_id_its_deliveries_carry():
    with Server(env=LOOPBACK) as s, Receiver() as r:
        wid = create_webhook(s, r.url, ["order.paid"])
        a = signal_event(s, "order.paid", pk=1, data={"n": 1})
        b = s.request("POST", "/api/v1/Webhook/order.paid/2", {"n": 2})
        assert a.status == 204 and b.status == 204, (a, b)
        ida, idb = a.header("Hookd-Event-Id"), b.header("Hookd-Event-Id")
        assert UUID.match(ida or "") and UUID.match(idb or ""), (ida, idb)
        assert ida != idb
        got = r.wait_for(2)
        by_pk = {json.loads(q.body)["PrimaryKey"]: q for q in got}
        assert json.loads(by_pk[1].body)["EventId"] == ida
        assert by_pk[1].header("X-SuperOffice-EventId") == ida
        assert json.loads(by_pk[2].body)["EventId"] == idb
        ids = wait_until(lambda: (lambda v: v if len(v) == 2 else None)(logged_event_ids(s, wid)),
                         what="both attempts in the log")
        assert sorted(ids) == sorted([ida, idb])


def test_a_repeated_idempotency_key_answers_the_first_event_id():
    with Server(env=LOOPBACK) as s, Receiver() as r:
        create_webhook(s, r.url, ["i.once"])
        h = {"Idempotency-Key": "order-17"}
        first = signal_event(s, "i.once", headers=h)
        again = signal_event(s, "i.once", headers=h)
        other = signal_event(s, "i.once", headers={"Idempotency-Key": "order-18"})
        assert first.status == again.status == other.status == 204
        assert UUID.match(first.header("Hookd-Event-Id") or "")
        assert again.header("Hookd-Event-Id") == first.header("Hookd-Event-Id")
        assert other.header("Hookd-Event-Id") != first.header("Hookd-Event-Id")
        r.wait_for(2)
        time.sleep(0.3)
        assert len(r.requests) == 2


def test_no_event_id_without_a_stored_event():
    with Server(env=LOOPBACK) as s:
        bad = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", {"EventName": "", "PrimaryKey": 1, "Data": {}})
        assert bad.status == 400 and bad.header("Hookd-Event-Id") is None


if __name__ == "__main__":
    run(globals())
