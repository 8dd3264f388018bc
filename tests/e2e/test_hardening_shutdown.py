"""End to end: shutdown is orderly on every path. A SIGTERM while a
synchronous call outlives shutdown_timeout, or while deliveries are on the
wire, exits 0 in bounded time with a clean log, and every event acknowledged
before the signal is still there after the restart (delivered or pending)."""
import json
import signal
import socket
import threading
import time

from hookd_test import ADMIN_KEY, run, Server, wait_until
from receiver import Receiver

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}


def create_webhook(s, url, events, name="hook", extension=None):
    body = {"Name": name, "Events": events, "TargetUrl": url, "Secret": "s3cret", "State": "Active"}
    if extension is not None:
        body["Extension"] = extension
    r = s.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal_event(s, name, pk, conn=None):
    return s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                     {"EventName": name, "PrimaryKey": pk, "Data": {}}, conn=conn)


def execute(s, ext, body, timeout=30):
    return s.request("POST", "/api/rest/Webhooks/Execute?extension=" + ext, json.dumps(body),
                     headers={"Content-Type": "application/json"}, auth="rest", timeout=timeout)


def delivered_keys(s, rx, wid):
    """PrimaryKeys of the events with a successful attempt in webhook wid's log (EventId -> the receiver's copy)."""
    pk_of = {}
    for q in rx.requests:
        try:
            doc = q.json()
        except ValueError:
            continue
        pk_of[doc["EventId"]] = doc["PrimaryKey"]
    r = s.request("GET", "/api/v3/webhook/%d/log?pageSize=1000" % wid)
    assert r.status == 200, r
    return {pk_of[i["eventId"]] for i in r.json() if i["result"].startswith("2") and i["eventId"] in pk_of}


def sigterm_and_wait(s, bound):
    """SIGTERM; hookd must exit 0 (Server.stop checks it and the log) within bound seconds."""
    rc = s.stop(signal.SIGTERM, timeout=bound)
    assert rc == 0, rc


def test_sigterm_while_a_synchronous_call_outlives_shutdown_timeout():
    # The Execute's receiver answers after 20 s; shutdown_timeout is 2 s. Another webhook has a backlog of
    # acknowledged events, sent one at a time to a receiver that answers after 0.3 s.
    env = dict(LOOPBACK, HOOKD_SERVER_SHUTDOWN_TIMEOUT="2s", HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT="30s",
               HOOKD_DELIVERY_TOTAL_TIMEOUT="40s", HOOKD_DELIVERY_CONCURRENCY_PER_ORIGIN="1")
    with Receiver() as slow, Receiver() as rx, Server(env=env) as s:
        slow.reply(status=200, delay=20)
        rx.reply(status=200, delay=0.3)
        create_webhook(s, slow.url + "/exec", ["never.signalled"], name="exec", extension="Slow")
        wid = create_webhook(s, rx.url + "/queued", ["order.placed"], name="queued")
        acked = []
        for pk in range(30):
            r = signal_event(s, "order.placed", pk)
            assert r.status == 204, r
            acked.append(pk)
        result = {}

        def call():
            try:
                result["r"] = execute(s, "Slow", {"a": 1}, timeout=30)
            except Exception as e:  # the connection closed without an answer
                result["e"] = e

        t = threading.Thread(target=call)
        t.start()
        slow.wait_for(1)
        rx.wait_for(2)
        signalled = time.time()
        sigterm_and_wait(s, bound=15)
        t.join(15)
        assert not t.is_alive()
        # The call in flight got its answer: it was cancelled, not cut off.
        assert "r" in result, result
        r = result["r"]
        assert r.status == 200 and r.json()["Success"] is False, r
        # No delivery was started after the signal (one that was already being dispatched may arrive just
        # after it; the backlog would keep going for the whole drain otherwise).
        late = [q for q in rx.requests if q.time > signalled]
        assert len(late) <= 1, (len(late), len(rx.requests))
        assert "stopped" in s.log()
        # Nothing acknowledged was lost: after the restart every event is delivered.
        rx.reply(status=200)
        s.start()
        wait_until(lambda: set(acked) <= delivered_keys(s, rx, wid), timeout=30,
                   what="every acknowledged event delivered after the restart")


def test_sigterm_while_deliveries_are_in_flight():
    # Deliveries keep going to a receiver that answers after 0.2 to 3 s while events are signalled; the
    # signal comes with many of them on the wire, some finishing within the grace, others not.
    env = dict(LOOPBACK, HOOKD_SERVER_SHUTDOWN_TIMEOUT="2s", HOOKD_DELIVERY_CONCURRENCY_PER_ORIGIN="32",
               HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT="30s", HOOKD_DELIVERY_TOTAL_TIMEOUT="40s")
    counter = {"n": 0}
    lock = threading.Lock()

    def varying(req):
        from receiver import Reply
        with lock:
            counter["n"] += 1
            n = counter["n"]
        return Reply(status=200, delay=(0.2, 0.8, 3.0)[n % 3])

    with Receiver(handler=varying) as rx, Server(env=env) as s:
        wid = create_webhook(s, rx.url + "/in", ["item.changed"])
        acked = []
        stop = threading.Event()

        def signaller():
            conn = s.connection(timeout=5)
            pk = 0
            while not stop.is_set():
                try:
                    r = signal_event(s, "item.changed", pk, conn=conn)
                except Exception:
                    return
                if r.status == 204:
                    acked.append(pk)
                elif r.status != 503:
                    raise AssertionError(r)
                pk += 1
                time.sleep(0.01)

        t = threading.Thread(target=signaller)
        t.start()
        wait_until(lambda: len(rx.requests) >= 40, what="deliveries on the wire")
        sigterm_and_wait(s, bound=15)
        stop.set()
        t.join(10)
        assert len(acked) >= 40, len(acked)
        rx.handler = None
        rx.reply(status=200)
        s.start()
        wait_until(lambda: set(acked) <= delivered_keys(s, rx, wid), timeout=30,
                   what="every acknowledged event delivered after the restart")


def test_a_second_signal_cancels_what_is_on_the_wire_and_still_answers():
    # shutdown_timeout is long; the second SIGTERM must not wait for it, and the call in flight still gets
    # its answer (cancelled) before the process exits 0.
    env = dict(LOOPBACK, HOOKD_SERVER_SHUTDOWN_TIMEOUT="60s", HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT="90s",
               HOOKD_DELIVERY_TOTAL_TIMEOUT="90s")
    with Receiver() as slow, Server(env=env) as s:
        slow.reply(status=200, delay=60)
        create_webhook(s, slow.url + "/exec", ["never.signalled"], name="exec", extension="Slow")
        result = {}

        def call():
            try:
                result["r"] = execute(s, "Slow", {"a": 1}, timeout=90)
            except Exception as e:
                result["e"] = e

        t = threading.Thread(target=call)
        t.start()
        slow.wait_for(1)
        s.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in s.log(), what="the drain")
        sigterm_and_wait(s, bound=20)
        t.join(20)
        assert "second signal" in s.log()
        assert "r" in result, result
        assert result["r"].status == 200 and result["r"].json()["Success"] is False, result["r"]


def test_drain_timeout_with_a_client_that_never_finishes_its_request():
    # A client sends a head and part of its body, then nothing: after shutdown_timeout hookd gives up on it
    # and exits 0 with a clean log; what was acknowledged before is kept.
    env = dict(LOOPBACK, HOOKD_SERVER_SHUTDOWN_TIMEOUT="1s", HOOKD_SERVER_BODY_TIMEOUT="60s")
    with Receiver() as rx, Server(env=env) as s:
        rx.reply(status=200, delay=10)
        wid = create_webhook(s, rx.url + "/in", ["a.b"])
        for pk in range(3):
            assert signal_event(s, "a.b", pk).status == 204
        rx.wait_for(1)
        c = socket.create_connection((s.host, s.port))
        try:
            c.sendall(b"POST /api/v1/Agents/Webhook/SignalEvent HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                      ADMIN_KEY.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Ev")
            time.sleep(0.3)
            sigterm_and_wait(s, bound=15)
        finally:
            c.close()
        assert "abandoned" in s.log(), s.log()[-2000:]
        rx.reply(status=200)
        s.start()
        wait_until(lambda: {0, 1, 2} <= delivered_keys(s, rx, wid), timeout=30,
                   what="every acknowledged event delivered after the restart")


if __name__ == "__main__":
    run(globals())
