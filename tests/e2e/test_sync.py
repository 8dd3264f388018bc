"""End to end: synchronous invocations (Ivanti Execute, EnergyCAP custom
actions, SuperOffice Test) and the nodes and accounts that scope them."""
import base64
import hashlib
import hmac
import json
import os
import socket
import tempfile
import threading
import time

from hookd_test import ADMIN_KEY, Server, run
from receiver import Receiver, Reply

ALLOW = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}

IVANTI_MISSING = (b'{"ErrorCode":"UnhandledSystemException-","Message":"Unhandled system exception: Webhook '
                  b'validation failed for Execute operation. Errors: You must enter an endpoint extension to your '
                  b'base URL. "}')
IVANTI_INVALID = (b'{"ErrorCode":"UnhandledSystemException-","Message":"Unhandled system exception: Invalid Webhook '
                  b'Extension Provided. "}')
IVANTI_MISTYPED = (b'{"ErrorCode":"UnhandledSystemException-","Message":"Unhandled system exception: This webhook '
                   b'extension doesn\'t exist."}')
IVANTI_TOO_LONG = (b'{"ErrorCode":"UnhandledSystemException-","Message":"Unhandled system exception: Request Body '
                   b'must be less than or equal to 100,000 characters"}')
IVANTI_401 = (b'{"code":"ISM_4001","description":"Invalid Session key or Authentication token","message":"",'
              b'"help":""}')


def create_webhook(s, url, extension=None, secret="s3cret", state="Active", name="hook"):
    body = {"Name": name, "Events": ["contact.created"], "TargetUrl": url, "Secret": secret, "State": state}
    if extension is not None:
        body["Extension"] = extension
    r = s.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def execute(s, ext, body, content_type="application/json", key=ADMIN_KEY):
    path = "/api/rest/Webhooks/Execute" + ("" if ext is None else "?extension=" + ext)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return s.request("POST", path, body, headers={"Content-Type": content_type} if content_type else None,
                     key=key, auth="rest")


def so_signature(secret, body):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---- Ivanti Execute -----------------------------------------------------------

def test_execute_delivers_json_and_xml_signed():
    with Receiver() as rx, Server(env=ALLOW) as s:
        rx.reply(status=202, body=b"taken")
        wid = create_webhook(s, rx.url + "/hook", extension="MyTestWebhook")
        r = execute(s, "MyTestWebhook", {"Subject": "Printer on fire", "Priority": 1})
        assert r.status == 200, r
        out = r.json()
        assert out["Success"] is True and out["StatusCode"] == 202 and out["WebhookId"] == wid, out
        assert out["Response"].endswith("taken"), out
        req = rx.wait_for(1)[0]
        got = req.json()
        assert got["Event"] == "webhook.execute" and got["Data"] == {
            "WebhookBody": {"Subject": "Printer on fire", "Priority": 1}}, got
        assert got["Changes"] == ["WebhookBody"] and got["EventId"] == out["EventId"], got
        assert req.header("X-SuperOffice-Signature") == so_signature("s3cret", req.body)
        assert req.header("webhook-id") and req.header("webhook-signature").startswith("v1,")

        xml = '<?xml version="1.0"?><!-- c --><Incident id="7"><Subject>A &amp; B</Subject><x/></Incident>'
        r = execute(s, "MyTestWebhook", xml, content_type="application/xml; charset=utf-8")
        assert r.status == 200 and r.json()["Success"] is True, r
        assert rx.wait_for(2)[1].json()["Data"] == {"WebhookBody": xml}

        # Both attempts are in the webhook's log.
        r = s.request("GET", "/api/v3/webhook/%d/log" % wid)
        assert r.status == 200 and len(r.json()) == 2, r


def test_execute_is_logged_but_cannot_be_resent():
    with Server(env=ALLOW) as s, Receiver() as rx:
        wid = create_webhook(s, rx.url + "/in", extension="LogMe")
        assert execute(s, "LogMe", {"a": 1}).status == 200
        rx.wait_for(1)
        page = s.request("GET", "/api/v3/webhook/%d/log" % wid, auth="eci")
        assert page.status == 200 and page.header("TotalNumberOfRecords") == "1", page
        lid = page.json()[0]["webhookLogId"]
        r = s.request("POST", "/api/v3/webhook/%d/log/%d/resend" % (wid, lid), auth="eci")
        assert r.status == 400 and "synchronous" in r.json()["message"], r
        time.sleep(0.2)
        assert len(rx.requests) == 1


def test_execute_errors_have_the_documented_bodies():
    with Receiver() as rx, Server(env=ALLOW) as s:
        create_webhook(s, rx.url + "/hook", extension="MyTestWebhook")
        create_webhook(s, rx.url + "/off", extension="Stopped1", state="Stopped")
        s.cli("user", "add", "--code", "viewer", "--perm", "ApplicationSettings:View")
        viewer = s.cli("key", "create", "--user", "viewer").stdout.strip()
        cases = [
            (execute(s, None, {"a": 1}), 400, IVANTI_MISSING),
            (execute(s, "", {"a": 1}), 400, IVANTI_MISSING),
            (execute(s, "NonExistentWebhook", {"a": 1}), 400, IVANTI_INVALID),
            (execute(s, "mytestwebhook", {"a": 1}), 400, IVANTI_MISTYPED),
            (execute(s, "MyTestWebhook", {"a": 1}, key="hk_wrong"), 401, IVANTI_401),
            (execute(s, "MyTestWebhook", {"a": 1}, key=None), 401, IVANTI_401),
        ]
        for r, status, body in cases:
            assert r.status == status and r.body == body, (r, body)
        r = execute(s, "MyTestWebhook", {"a": 1}, key=viewer)
        assert r.status == 403 and r.json()["ErrorCode"] == "UnhandledSystemException-", r
        r = execute(s, "Stopped1", {"a": 1})
        assert r.status == 400 and "Stopped" in r.json()["Message"], r
        # The body must be what its Content-Type says.
        for body, ctype, words in [("<a>x</a>", "application/json", "looks like XML"),
                                   ("[1, 2]", "application/json", "not a JSON object"),
                                   ('{"a": 1}', "application/xml", "not well-formed XML"),
                                   ("<a><b></a></b>", "text/xml", "does not match its start tag"),
                                   ("<a/><b/>", "application/xml", "second root"),
                                   ('{"a": 1}', "text/plain", "must be JSON or XML"),
                                   ('{"a": 1}', None, "Content-Type none")]:
            r = execute(s, "MyTestWebhook", body, content_type=ctype)
            assert r.status == 400, (body, ctype, r)
            msg = r.json()["Message"]
            assert msg.startswith("Unhandled system exception: ") and words in msg, (body, ctype, msg)
        assert rx.requests == [], rx.requests


def test_execute_counts_characters_not_bytes():
    with Receiver() as rx, Server(env=ALLOW) as s:
        create_webhook(s, rx.url + "/hook", extension="Big")
        wrapper = '{"t":"' + '"}'          # 8 characters around the text
        ok = '{"t":"' + "\U0001F600" * (100000 - len(wrapper)) + '"}'
        assert len(ok) == 100000 and len(ok.encode()) > 390000
        r = execute(s, "Big", ok)
        assert r.status == 200 and r.json()["Success"] is True, r
        assert rx.wait_for(1)[0].json()["Data"]["WebhookBody"]["t"] == ok[6:-2]
        over = '{"t":"' + "\u00e9" * (100001 - len(wrapper)) + '"}'
        r = execute(s, "Big", over)
        assert r.status == 400 and r.body == IVANTI_TOO_LONG, r
        assert len(rx.requests) == 1


# ---- EnergyCAP custom actions -----------------------------------------------------

def setup_tree(s):
    """Nodes 1 (root) > 10 > 100, and 2 (root); accounts 500 in 100, 501 in 10, 600 in 2."""
    s.cli("node", "add", "--id", "1", "--name", "Root")
    r = s.request("PUT", "/api/v3/admin/node/10", {"name": "East", "parentId": 1}, auth="eci")
    assert r.status == 200 and r.json() == {"nodeId": 10, "name": "East", "parentId": 1}, r
    s.cli("node", "add", "--id", "100", "--name", "Plant", "--parent", "10")
    s.cli("node", "add", "--id", "2", "--name", "Other root")
    s.cli("account", "add", "--id", "500", "--node", "100", "--name", "Boiler")
    r = s.request("PUT", "/api/v3/admin/account/501", {"name": "Office", "nodeId": 10}, auth="eci")
    assert r.status == 200 and r.json() == {"accountId": 501, "name": "Office", "nodeId": 10}, r
    s.cli("account", "add", "--id", "600", "--node", "2", "--name", "Elsewhere")
    s.cli("user", "add", "--code", "east", "--name", "East Manager", "--perm", "Accounts:Edit", "--top-node", "10")
    return s.cli("key", "create", "--user", "east").stdout.strip()


def action(s, key, ids, wid):
    return s.request("PUT", "/api/v202211/account/customAction", {"ids": ids, "webhookId": wid}, key=key,
                     auth="eci")


def test_custom_account_action():
    with Receiver() as rx, Server(env=ALLOW) as s:
        key = setup_tree(s)
        wid = create_webhook(s, rx.url + "/action", name="Recalculate")
        rx.reply(status=200, body=b'{"queued": true}', headers={"X-Receiver": "yes"})
        r = action(s, key, [500, 501, 500], wid)
        assert r.status == 200, r
        out = r.json()
        assert out["result"] == "200" and out["url"] == rx.url + "/action", out
        assert out["user"]["userCode"] == "east" and out["user"]["fullName"] == "East Manager", out
        req = rx.wait_for(1)[0]
        assert out["request"].startswith("POST /action HTTP/1.1\r\n"), out
        assert out["request"].endswith(req.body.decode()), out
        assert "X-SuperOffice-Signature: " + so_signature("s3cret", req.body) in out["request"]
        assert out["response"].startswith("HTTP/1.1 200") and "X-Receiver: yes" in out["response"], out
        assert out["response"].endswith('{"queued": true}'), out
        got = req.json()
        assert got["Event"] == "account.customAction" and got["Data"] == {"ids": [500, 501]}, got

        # One id outside the caller's subtree (or unknown): 400 naming it, nothing sent.
        for bad in ([500, 600], [500, 9999], [1]):
            r = action(s, key, bad, wid)
            assert r.status == 400, r
            e = r.json()
            assert str(bad[-1]) in e["message"] and "ids" in e["errors"], e
        r = action(s, ADMIN_KEY, [500], wid)  # the admin has no topmost node
        assert r.status == 400 and "no topmost node" in r.json()["message"], r
        assert len(rx.requests) == 1

        assert action(s, key, [], wid).status == 204
        r = action(s, key, [500], 4242)
        assert r.status == 404, r
        r = action(s, key, ["x"], wid)
        assert r.status == 400 and "ids" in r.json()["errors"], r
        s.cli("user", "add", "--code", "nope", "--perm", "ApplicationSettings:Manage", "--top-node", "1")
        nope = s.cli("key", "create", "--user", "nope").stdout.strip()
        assert action(s, nope, [500], wid).status == 403

        # The log holds the attempt with its details.
        r = s.request("GET", "/api/v3/webhook/%d/log" % wid, auth="eci")
        assert r.status == 200 and len(r.json()) == 1, r
        item = r.json()[0]
        r = s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, item["webhookLogId"]), auth="eci")
        assert r.status == 200 and r.json()["request"] == out["request"], r
        assert len(rx.requests) == 1


def test_custom_action_to_a_receiver_that_is_down_counts_as_failure():
    with Server(env=dict(ALLOW, HOOKD_DELIVERY_DISABLE_AFTER="2")) as s:
        key = setup_tree(s)
        wid = create_webhook(s, "http://127.0.0.1:%d/gone" % free_port())
        r = action(s, key, [501], wid)
        assert r.status == 200, r
        out = r.json()
        assert out["result"] == "0" and out["response"] == "" and out["user"]["userCode"] == "east", out
        assert out["request"].startswith("POST /gone") or out["request"] == "", out
        r = s.request("PUT", "/api/v3/admin/customapplicationaction/%d" % wid, auth="eci")
        assert r.status == 200 and r.json()["result"] == "0", r
        # Two failures in a row: the auto-disable rule applies to synchronous calls too.
        r = s.request("GET", "/api/v1/Webhook/%d" % wid)
        assert r.json()["State"] == "TooManyErrors", r
        r = action(s, key, [501], wid)
        assert r.status == 400 and "TooManyErrors" in r.json()["message"], r


def test_custom_application_action():
    with Receiver() as rx, Server(env=ALLOW) as s:
        wid = create_webhook(s, rx.url + "/app")
        r = s.request("PUT", "/api/v3/admin/customapplicationaction/%d" % wid, auth="eci")
        assert r.status == 200 and r.json()["result"] == "200" and r.json()["user"]["userCode"] == "admin", r
        got = rx.wait_for(1)[0].json()
        assert got["Event"] == "application.customAction" and got["Data"] == {}, got
        assert s.request("PUT", "/api/v3/admin/customapplicationaction/999", auth="eci").status == 404


def test_admin_tree_endpoints_keep_a_tree():
    with Server() as s:
        assert s.request("PUT", "/api/v3/admin/node/1", {"name": "Root", "parentId": None}).status == 200
        assert s.request("PUT", "/api/v3/admin/node/2", {"name": "Child", "parentId": 1}).status == 200
        r = s.request("PUT", "/api/v3/admin/node/1", {"name": "Root", "parentId": 2})
        assert r.status == 400 and "own ancestor" in r.json()["message"], r
        r = s.request("PUT", "/api/v3/admin/node/3", {"name": "Orphan", "parentId": 77})
        assert r.status == 400 and "77" in r.json()["message"], r
        r = s.request("PUT", "/api/v3/admin/account/5", {"name": "A", "nodeId": 77})
        assert r.status == 400 and "77" in r.json()["message"], r
        r = s.request("PUT", "/api/v3/admin/account/5", {"nodeId": 2})
        assert r.status == 400 and "name" in r.json()["errors"], r


def test_csv_import_is_one_transaction_and_names_the_line():
    with Server() as s:
        d = tempfile.mkdtemp(dir=s.tmp)
        nodes = os.path.join(d, "nodes.csv")
        with open(nodes, "w") as f:
            # A parent may come after its child; names may be quoted.
            f.write('id,parent,name\r\n20,10,"Plant, North"\r\n10,,Region\r\n\r\n30,20,"The ""big"" one"\r\n')
        p = s.cli("node", "import", nodes)
        assert "imported 3 nodes" in p.stdout, p.stdout
        listing = s.cli("node", "list").stdout
        assert '20\tparent=10\tPlant, North' in listing and 'The "big" one' in listing, listing

        accounts = os.path.join(d, "accounts.csv")
        with open(accounts, "w") as f:
            f.write("1,30,Meter A\n2,20,Meter B\n3,99,Meter C\n")
        p = s.cli("account", "import", accounts, check=False)
        assert p.returncode == 1 and "line 3" in p.stderr and "node 99" in p.stderr, p.stderr
        assert s.cli("account", "list").stdout == ""
        with open(accounts, "w") as f:
            f.write("1,30,Meter A\n2,20,Meter B\n1,20,Again\n")
        p = s.cli("account", "import", accounts, check=False)
        assert p.returncode == 1 and "line 3" in p.stderr and "line 1" in p.stderr, p.stderr
        with open(nodes, "w") as f:
            f.write("40,41,A\n41,40,B\n")
        p = s.cli("node", "import", nodes, check=False)
        assert p.returncode == 1 and "ancestor" in p.stderr, p.stderr
        with open(accounts, "w") as f:
            f.write("1,30,Meter A\n2,20,Meter B\n")
        assert "imported 2 accounts" in s.cli("account", "import", accounts).stdout
        p = s.cli("node", "add", "--id", "10", "--name", "Loop", "--parent", "30", check=False)
        assert p.returncode == 1 and "ancestor" in p.stderr, p.stderr


# ---- SuperOffice Test ---------------------------------------------------------------

def test_webhook_test_reports_the_receivers_answer():
    with Receiver() as rx, Server(env=ALLOW) as s:
        rx.queue(Reply(status=500, body=b"kaputt"), Reply(status=200, body=b"hello there"))
        hook = {"Name": "t", "Events": ["contact.created"], "TargetUrl": rx.url + "/t", "Secret": "abc"}
        r = s.request("POST", "/api/v1/Webhook/Test", hook)
        assert r.status == 200, r
        out = r.json()
        assert out["Success"] is False and out["Message"].startswith("HTTP/1.1 500"), out
        assert out["Message"].endswith("kaputt"), out
        r = s.request("POST", "/api/v1/Agents/Webhook/TestWebhook", {"Webhook": hook})
        out = r.json()
        assert r.status == 200 and out["Success"] is True and out["Message"].endswith("hello there"), r
        reqs = rx.wait_for(2)
        for req in reqs:
            got = req.json()
            assert got["Event"] == "test" and got["Entity"] == "test" and got["PrimaryKey"] == 0, got
            assert got["ContextIdentifier"] == "Default", got
            assert req.header("X-Hook-Test") == "true"
            assert req.header("X-SuperOffice-Signature") == so_signature("abc", req.body)
        # No response at all is a failure with the reason; nothing was stored.
        hook["TargetUrl"] = "http://127.0.0.1:%d/" % free_port()
        out = s.request("POST", "/api/v1/Webhook/Test", hook).json()
        assert out["Success"] is False and "refused" in out["Message"], out
        assert s.request("GET", "/api/v1/Webhook").json() == []
        r = s.request("POST", "/api/v1/Webhook/Test", {"Name": "no url"})
        assert r.status == 400 and "TargetUrl" in r.json()["Message"], r


def test_a_slow_receiver_is_bounded_by_the_timeouts_and_the_loop_stays_free():
    env = dict(ALLOW, HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT="1s", HOOKD_DELIVERY_TOTAL_TIMEOUT="2s")
    with Receiver() as rx, Server(env=env) as s:
        rx.reply(status=200, delay=4)
        create_webhook(s, rx.url + "/slow", extension="Slow")
        result = {}

        def call():
            result["r"] = execute(s, "Slow", {"a": 1})

        t = threading.Thread(target=call)
        t0 = time.time()
        t.start()
        rx.wait_for(1)
        # While the call waits, the server answers others at once.
        h = s.request("GET", "/healthz", key=None, timeout=2)
        assert h.status == 200 and time.time() - t0 < 1.5, h
        t.join(10)
        r = result["r"]
        assert r.status == 200 and r.json()["Success"] is False and "1000 ms" in r.json()["Error"], r
        assert time.time() - t0 < 3, time.time() - t0


def test_sync_calls_use_the_ssrf_guard():
    with Receiver() as rx, Server() as s:  # no allowlist: loopback is refused
        hook = {"Name": "t", "TargetUrl": rx.url + "/t"}
        out = s.request("POST", "/api/v1/Webhook/Test", hook).json()
        assert out["Success"] is False and "SSRF" in out["Message"], out
        # A literal loopback address is refused at save; a name is judged when the call connects.
        create_webhook(s, "http://localhost:%d/hook" % rx.port, extension="Guarded")
        r = execute(s, "Guarded", {"a": 1})
        assert r.status == 200 and r.json()["Success"] is False and "SSRF" in r.json()["Error"], r
        assert rx.requests == []


if __name__ == "__main__":
    run(globals())
