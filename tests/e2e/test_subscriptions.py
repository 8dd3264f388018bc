"""End to end: subscriptions by pattern. "*" matches every event, "prefix.*" every
event whose name starts with "prefix."; a webhook matched several ways gets one
delivery; state events (webhook{ID}.*) reach only subscriptions naming them."""
import time

from hookd_test import Server, run
from receiver import Receiver
from test_delivery import LOOPBACK, create_webhook, signal_event


def events_of(receiver):
    return sorted(q.json()["Event"] for q in receiver.requests)


def test_patterns_match_by_prefix_and_deliver_once():
    with Server(env=LOOPBACK) as s, Receiver() as every, Receiver() as orders, Receiver() as paid, \
            Receiver() as both, Receiver() as exact:
        create_webhook(s, every.url, ["*"], name="every")
        create_webhook(s, orders.url, ["order.*"], name="orders")
        create_webhook(s, paid.url, ["order.paid.*"], name="paid")
        create_webhook(s, both.url, ["*", "order.*", "order.paid"], name="both")
        create_webhook(s, exact.url, ["order.paid"], name="exact")
        names = ["order.paid", "order.paid.v2", "orders.created", "order.", "contact.created"]
        for i, n in enumerate(names):
            assert signal_event(s, n, pk=i).status == 204
        every.wait_for(len(names))
        both.wait_for(len(names))
        orders.wait_for(2)
        paid.wait_for(1)
        exact.wait_for(1)
        time.sleep(0.5)
        assert events_of(every) == sorted(names)
        assert events_of(both) == sorted(names), "one delivery per event, however many subscriptions match"
        assert events_of(orders) == ["order.paid", "order.paid.v2"]
        assert events_of(paid) == ["order.paid.v2"]
        assert events_of(exact) == ["order.paid"]


def test_bad_patterns_are_refused_and_change_nothing():
    with Server(env=LOOPBACK) as s, Receiver() as r:
        for bad in (["order*"], ["*.paid"], ["order.*.x"], [".*"], ["**"], ["order.**"]):
            res = s.request("POST", "/api/v1/Webhook", {"Name": "x", "Events": bad, "TargetUrl": r.url,
                                                       "Type": "webhook"})
            assert res.status == 400 and "Events" in res.body.decode(), (bad, res)
        assert s.request("GET", "/api/v1/Webhook").json() == []


def test_state_events_only_by_their_explicit_name():
    env = dict(LOOPBACK, HOOKD_DELIVERY_RETRY_SCHEDULE="0s")
    with Server(env=env) as s, Receiver() as target, Receiver() as every, Receiver() as prefix, \
            Receiver() as named:
        wid = create_webhook(s, target.url, ["t.x"], name="target")
        create_webhook(s, every.url, ["*"], name="every")
        create_webhook(s, prefix.url, ["webhook%d.*" % wid], name="prefix")
        create_webhook(s, named.url, ["webhook%d.stopped" % wid], name="named")
        patch = {"Content-Type": "application/json-patch+json"}
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wid, [{"op": "replace", "path": "State", "value": "Stopped"}],
                      headers=patch)
        assert r.status == 200, r
        assert named.wait_for(1)[0].json()["Event"] == "webhook.stopped"
        assert signal_event(s, "after.stop").status == 204
        every.wait_for(1)
        time.sleep(0.5)
        assert events_of(every) == ["after.stop"], "a pattern never matches a state event"
        assert prefix.requests == []


if __name__ == "__main__":
    run(globals())
