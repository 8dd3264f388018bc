"""End to end: the delivery engine's scheduling (slow and dead receivers beside healthy ones, synchronous
calls sharing an origin's connection slots) and the custom action's input checks."""
import json
import socket
import threading
import time

from hookd_test import ADMIN_KEY, Server, run
from receiver import Receiver

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}


def create_webhook(s, url, events, name="hook", extension=None):
    body = {"Name": name, "Events": events, "TargetUrl": url, "Secret": "s3cret", "State": "Active"}
    if extension is not None:
        body["Extension"] = extension
    r = s.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal_event(s, name, pk=1, data=None):
    r = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                  {"EventName": name, "PrimaryKey": pk, "Data": data if data is not None else {}})
    assert r.status == 204, r
    return r


def execute(s, ext, body):
    return s.request("POST", "/api/rest/Webhooks/Execute?extension=" + ext, json.dumps(body),
                     headers={"Content-Type": "application/json"}, auth="rest")


class DeadEndpoint:
    """A port whose kernel completes connections that nobody ever reads: requests hang until a timeout."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def test_slow_and_dead_receivers_do_not_delay_a_healthy_one():
    # A small window and two slots per origin: the backlog of the slow and dead webhooks is many times
    # the window. Their requests hang far longer than the test runs.
    env = dict(LOOPBACK, HOOKD_DELIVERY_MAX_INFLIGHT="16", HOOKD_DELIVERY_CONCURRENCY_PER_ORIGIN="2",
               HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT="30s", HOOKD_DELIVERY_TOTAL_TIMEOUT="40s",
               HOOKD_SERVER_SHUTDOWN_TIMEOUT="2s")
    dead = [DeadEndpoint() for _ in range(3)]
    try:
        with Server(env=env) as s, Receiver() as slow, Receiver() as healthy:
            slow.reply(status=200, delay=5)
            for i in range(3):
                create_webhook(s, slow.url + "/slow%d" % i, ["load.backlog"], name="slow%d" % i)
            for i, d in enumerate(dead):
                create_webhook(s, d.url + "/dead", ["load.backlog"], name="dead%d" % i)
            create_webhook(s, healthy.url + "/ok", ["ok.event"], name="healthy")
            for n in range(30):
                signal_event(s, "load.backlog", pk=n)
            # The slow and dead origins are saturated and their backlog fills the window.
            slow.wait_for(2, timeout=10)
            latencies = []
            for n in range(10):
                t0 = time.time()
                signal_event(s, "ok.event", pk=n)
                got = healthy.wait_for(n + 1, timeout=10)
                latencies.append(got[n].time - t0)
                assert got[n].json()["PrimaryKey"] == n, got[n].json()
            assert max(latencies) < 1.0, latencies
            # Still no more than two requests at a time went to the slow origin.
            assert len(slow.requests) == 2, len(slow.requests)
    finally:
        for d in dead:
            d.close()


def test_synchronous_calls_share_the_origins_slots():
    # One slot; the receiver answers after 1.8 s and a call waits at most 2.5 s (total_timeout) for a
    # slot: a (0.1 s after the queued delivery) gets the slot when the queued delivery is done; b (0.3 s
    # after) would get it only when a is done (3.6 s), past its wait.
    env = dict(LOOPBACK, HOOKD_DELIVERY_CONCURRENCY_PER_ORIGIN="1", HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT="2500ms",
               HOOKD_DELIVERY_TOTAL_TIMEOUT="2500ms")
    with Server(env=env) as s, Receiver() as rx:
        rx.reply(status=200, delay=1.8)
        create_webhook(s, rx.url + "/queued", ["contact.created"], name="queued")
        create_webhook(s, rx.url + "/sync", ["other.event"], name="sync", extension="Sync")
        signal_event(s, "contact.created")
        first = rx.wait_for(1, timeout=10)[0]
        results = {}

        def call(tag, pause):
            time.sleep(pause)
            results[tag] = execute(s, "Sync", {"call": tag})

        threads = [threading.Thread(target=call, args=("a", 0.1)), threading.Thread(target=call, args=("b", 0.3))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        # a waited for the queued delivery's slot, then was sent alone.
        a = results["a"]
        assert a.status == 200 and a.json()["Success"] is True, a
        reqs = rx.requests
        sent_a = [r for r in reqs if r.path == "/sync" and r.json()["Data"]["WebhookBody"]["call"] == "a"]
        assert len(sent_a) == 1 and sent_a[0].time >= first.time + 1.5, (first.time, [r.time for r in reqs])
        # b waited behind a for longer than total_timeout: a clear 503, and nothing was sent for it.
        b = results["b"]
        assert b.status == 503 and "busy" in b.body.decode(), b
        assert not [r for r in reqs if r.path == "/sync" and r.json()["Data"]["WebhookBody"]["call"] == "b"]
        # The slot is free again: a call now goes at once.
        r = execute(s, "Sync", {"call": "c"})
        assert r.status == 200 and r.json()["Success"] is True, r


def setup_tree(s):
    s.cli("node", "add", "--id", "1", "--name", "Root")
    s.cli("account", "add", "--id", "500", "--node", "1", "--name", "Boiler")
    s.cli("user", "add", "--code", "ed", "--name", "Ed", "--perm", "Accounts:Edit", "--top-node", "1")
    return s.cli("key", "create", "--user", "ed").stdout.strip()


def test_custom_action_ids_that_are_not_an_array_get_a_400_naming_ids():
    with Server(env=LOOPBACK) as s, Receiver() as rx:
        key = setup_tree(s)
        wid = create_webhook(s, rx.url + "/action", ["contact.created"])
        for ids in ("x", 1.5, {}, 7, True):
            r = s.request("PUT", "/api/v202211/account/customAction", {"webhookId": wid, "ids": ids}, key=key,
                          auth="eci")
            assert r.status == 400, (ids, r)
            e = r.json()
            assert "ids" in e["errors"] and "must be an array" in e["message"], (ids, e)
        r = s.request("PUT", "/api/v202211/account/customAction", {"webhookId": wid}, key=key, auth="eci")
        assert r.status == 400 and "ids is required" in r.json()["message"], r
        assert rx.requests == []
        # Still serving, and a good call goes through.
        r = s.request("PUT", "/api/v202211/account/customAction", {"webhookId": wid, "ids": [500]}, key=key,
                      auth="eci")
        assert r.status == 200 and r.json()["result"] == "200", r


if __name__ == "__main__":
    run(globals())
