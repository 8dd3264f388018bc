"""End to end: what the registry refuses at save so that nothing saved fails at send (secrets, headers,
target URLs), large patches, Properties' limit, Agents reads of a missing webhook, and the Reason of
state events."""
import base64
import json
import threading
import time

from hookd_test import Server, run
from receiver import Receiver

SO = "/api/v1/Webhook"
EC = "/api/v3/webhook"
AGENTS = "/api/v1/Agents/Webhook/"
LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}


def so_body(**over):
    b = {"Name": "hook", "Events": ["contact.created"], "TargetUrl": "https://receiver.example.com/in",
         "Secret": "s3cret"}
    b.update(over)
    return b


def ec_body(**over):
    b = {"active": True, "mailingList": ["ops@example.com"], "secret": "ecap-secret",
         "url": "https://ecap.example.com/in", "webhookDescription": "", "webhookEventTypeId": 1,
         "webhookName": "ecap hook"}
    b.update(over)
    return b


def create(s, **over):
    r = s.request("POST", SO, so_body(**over))
    assert r.status == 200, r
    return r.json()["WebhookId"]


def refused(r, field, *words):
    """r is a 400 naming field (SuperOffice Message or EnergyCAP errors), its message holding words."""
    assert r.status == 400, r
    j = r.json()
    msg = j.get("Message") or j.get("message")
    if "errors" in j:
        assert field in j["errors"], (field, j)
    assert field in msg, (field, msg)
    for w in words:
        assert w in msg, (w, msg)
    return msg


def test_whsec_secret_must_be_standard_base64():
    with Server() as s:
        wid = create(s)
        tid = s.request("GET", EC + "/eventType").json()[0]["webhookEventTypeId"]
        good = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
        for bad in ("whsec_abc!", "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff\xfe-key").decode(), "whsec_",
                    "whsec_abc"):
            refused(s.request("POST", SO, so_body(Secret=bad)), "Secret", "base64")
            refused(s.request("PATCH", "%s/%d" % (SO, wid), {"Secret": bad}), "Secret")
            refused(s.request("POST", AGENTS + "SaveWebhook", so_body(Secret=bad, WebhookId=wid)), "Secret")
            refused(s.request("POST", EC, ec_body(secret=bad, webhookEventTypeId=tid), auth="eci"), "secret")
            refused(s.request("PUT", "%s/%d" % (EC, wid), ec_body(secret=bad, webhookEventTypeId=tid), auth="eci"),
                    "secret")
        assert s.request("GET", "%s/%d" % (SO, wid)).json()["Secret"] == "s3cret"
        r = s.request("PATCH", "%s/%d" % (SO, wid), {"Secret": good})
        assert r.status == 200 and r.json()["Secret"] == good, r
        r = s.request("PUT", "%s/%d" % (EC, wid), ec_body(secret="plain secret, no prefix", webhookEventTypeId=tid),
                      auth="eci")
        assert r.status == 200, r


def test_custom_headers_must_fit_the_delivery():
    with Server(env=LOOPBACK) as s, Receiver() as rx:
        # 32 headers of 1 KiB were saved, then silently dropped from every delivery.
        big = {"X-H%02d" % i: "v" * 1000 for i in range(32)}
        refused(s.request("POST", SO, so_body(Headers=big)), "Headers", "bytes")
        eight = {"X-H%02d" % i: "v" * 1000 for i in range(8)}
        refused(s.request("POST", SO, so_body(Headers=eight)), "Headers")
        wid = create(s)
        refused(s.request("PATCH", "%s/%d" % (SO, wid), {"Headers": eight}), "Headers")
        # What is accepted is sent, every header of it.
        six = {"X-H%02d" % i: "v" * 1000 for i in range(6)}
        hook = create(s, TargetUrl=rx.url + "/h", Headers=six)
        r = s.request("POST", AGENTS + "SignalEvent", {"EventName": "contact.created", "PrimaryKey": 1, "Data": {}})
        assert r.status == 204, r
        req = rx.wait_for(1)[0]
        for name, value in six.items():
            assert req.header(name) == value, name
        assert s.request("GET", "%s/%d" % (SO, hook)).json()["Headers"] == six


def test_target_urls_that_could_never_be_sent_are_refused():
    with Server() as s:
        wid = create(s)
        tid = s.request("GET", EC + "/eventType").json()[0]["webhookEventTypeId"]
        for url, words in (("http://user:pw@receiver.example.com/in", ["user"]),
                           ("http://user@receiver.example.com/in", ["user"]),
                           ("http://127.0.0.1%2e/in", ["percent"]),
                           ("http://127.1/in", []),
                           # A literal address the SSRF guard refuses: named with its rule.
                           ("http://127.0.0.1:8080/in", ["127.0.0.1:8080", "loopback", "allow_targets"]),
                           ("http://10.1.2.3/in", ["10.1.2.3", "private"]),
                           ("http://169.254.169.254/latest/meta-data", ["169.254.169.254", "link-local"]),
                           ("http://[::1]:9/in", ["::1", "loopback"])):
            refused(s.request("POST", SO, so_body(TargetUrl=url)), "TargetUrl", *words)
            refused(s.request("PATCH", "%s/%d" % (SO, wid), {"TargetUrl": url}), "TargetUrl", *words)
            refused(s.request("POST", EC, ec_body(url=url, webhookEventTypeId=tid), auth="eci"), "url", *words)
        # Names are judged when a delivery connects, not at save.
        r = s.request("PATCH", "%s/%d" % (SO, wid), {"TargetUrl": "http://localhost:8080/in"})
        assert r.status == 200, r
        assert len(s.request("GET", SO).json()) == 1
    # An address the allowlist admits is saved.
    with Server(env=LOOPBACK) as s:
        r = s.request("POST", SO, so_body(TargetUrl="http://127.0.0.1:8080/in"))
        assert r.status == 200, r
        refused(s.request("POST", SO, so_body(TargetUrl="http://10.1.2.3/in")), "TargetUrl", "private")


def test_properties_have_a_member_limit():
    with Server() as s:
        props = {"p%02d" % i: i for i in range(32)}
        wid = create(s, Properties=props)
        assert s.request("GET", "%s/%d" % (SO, wid)).json()["Properties"] == props
        more = dict(props, extra={"x": 1})
        refused(s.request("POST", SO, so_body(Properties=more)), "Properties", "32", '"extra"')
        refused(s.request("PATCH", "%s/%d" % (SO, wid), {"Properties": {"extra": 1}},
                          headers={"Content-Type": "application/merge-patch+json"}), "Properties", "extra")
        r = s.request("PATCH", "%s/%d" % (SO, wid), [{"op": "add", "path": "/Properties/p40", "value": 1}],
                      headers={"Content-Type": "application/json-patch+json"})
        refused(r, "Properties", "p40")
        assert s.request("GET", "%s/%d" % (SO, wid)).json()["Properties"] == props


def test_large_merge_patch_is_quick_and_delays_nobody():
    with Server() as s:
        wid = create(s)
        # About 1 MiB of members the view does not know: ignored, but each was once looked up
        # case-insensitively against all the others, inside the commit (54 s for 75,000).
        data = {"k%05d" % i: 1 for i in range(75000)}
        body = json.dumps({"Data": data, "Name": "patched"})
        assert len(body) < 1024 * 1024, len(body)
        signals = []

        def signaller():
            conn = s.connection()
            deadline = time.time() + 3
            while time.time() < deadline:
                t0 = time.time()
                r = s.request("POST", AGENTS + "SignalEvent", {"EventName": "x.y", "PrimaryKey": 1, "Data": {}},
                              conn=conn)
                signals.append((r.status, time.time() - t0))
            conn.close()

        t = threading.Thread(target=signaller)
        t.start()
        t0 = time.time()
        r = s.request("PATCH", "%s/%d" % (SO, wid), body, headers={"Content-Type": "application/merge-patch+json"},
                      timeout=120)
        took = time.time() - t0
        t.join()
        assert r.status == 200 and r.json()["Name"] == "patched", r
        # Linear work on the loop: well under a second in a release build, a few under the sanitizers on a
        # busy machine; the quadratic scan inside the commit took minutes.
        assert took < 20, took
        assert signals and all(st == 204 for st, _ in signals), signals[:5]
        assert max(d for _, d in signals) < 15, max(d for _, d in signals)
        # The same size of Properties is refused at once, naming the member past the limit.
        t0 = time.time()
        r = s.request("PATCH", "%s/%d" % (SO, wid), json.dumps({"Properties": data}),
                      headers={"Content-Type": "application/merge-patch+json"}, timeout=120)
        refused(r, "Properties", "k00032")
        assert time.time() - t0 < 20


def test_agents_reads_of_a_missing_webhook_answer_null():
    with Server() as s:
        wid = create(s)
        assert s.request("DELETE", "%s/%d" % (SO, wid)).status == 204
        for path, body in (("GetWebhook?webhookId=%d" % wid, None), ("GetWebhook", {"WebhookId": wid}),
                           ("GetWebhook", {"webhookid": wid}), ("GetLastError?webhookId=%d" % wid, None),
                           ("GetWebhook?webhookId=4242", None)):
            r = s.request("POST", AGENTS + path, body)
            assert r.status == 200 and r.body == b"null", (path, r)
        # REST keeps its 404, and a malformed id is still a 400.
        assert s.request("GET", "%s/%d" % (SO, wid)).status == 404
        assert s.request("GET", "%s/%d/LastError" % (SO, wid)).status == 404
        assert s.request("POST", AGENTS + "GetWebhook").status == 400
        assert s.request("POST", AGENTS + "GetWebhook?webhookId=abc").status == 400
        # Writes to a missing webhook remain errors.
        assert s.request("POST", AGENTS + "SaveWebhook", so_body(WebhookId=wid)).status == 404


def test_superoffice_bodies_bind_members_in_any_case():
    with Server() as s:
        r = s.request("POST", AGENTS + "SaveWebhook",
                      {"webhook": {"webhookId": 0, "name": "camel", "events": ["contact.created"],
                                   "targetUrl": "https://receiver.example.com/in", "STATE": "stopped"}})
        assert r.status == 200, r
        w = r.json()
        assert w["Name"] == "camel" and w["State"] == "Stopped" and w["Events"] == ["contact.created"], w
        r = s.request("POST", AGENTS + "GetAllWebhooks", {"nameFilter": "cam", "statusfilter": "Stopped"})
        assert r.status == 200 and [x["WebhookId"] for x in r.json()] == [w["WebhookId"]], r
        r = s.request("POST", AGENTS + "DeleteWebhook", {"webhookid": w["WebhookId"]})
        assert r.status == 204, r


def test_state_events_carry_a_reason():
    with Server(env=LOOPBACK) as s, Receiver() as watcher:
        wid = create(s)
        create(s, TargetUrl=watcher.url + "/w", Name="watcher",
               Events=["webhook%d.stopped" % wid, "webhook%d.started" % wid])
        assert s.request("PATCH", "%s/%d" % (SO, wid), {"State": "Stopped"}).status == 200
        tid = s.request("GET", EC + "/eventType").json()[0]["webhookEventTypeId"]
        assert s.request("PUT", "%s/%d" % (EC, wid), ec_body(webhookEventTypeId=tid, active=True),
                         auth="eci").status == 200
        # Saving without a change of state announces nothing.
        assert s.request("PATCH", "%s/%d" % (SO, wid), {"Name": "renamed"}).status == 200
        events = [q.json() for q in watcher.wait_for(2)]
        assert [e["Event"] for e in events] == ["webhook.stopped", "webhook.started"], events
        for e, kind in zip(events, ("stopped", "started")):
            assert e["PrimaryKey"] == wid and e["Data"]["WebhookId"] == wid, e
            assert e["Data"]["Reason"] == "%s by user admin" % kind, e
            assert "Reason" in e["Changes"], e
        time.sleep(0.5)
        assert len(watcher.requests) == 2


if __name__ == "__main__":
    run(globals())


def test_signal_event_body_members_in_any_letter_case():
    # SuperOffice's own client sends camelCase members; the vendor binds them without regard to case.
    with Server() as s:
        r = s.request("POST", AGENTS + "SignalEvent", {"eventName": "contact.created", "primaryKey": 42, "data": {}})
        assert r.status == 204, (r.status, r.body)
        r = s.request("POST", AGENTS + "SignalEvent", {"primaryKey": 42, "data": {}})
        assert r.status == 400, (r.status, r.body)
