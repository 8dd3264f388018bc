"""End to end: the webhook registry across the SuperOffice and EnergyCAP dialects (one record, two views)."""
import email.utils
import json
import time

from hookd_test import ADMIN_KEY, Server, run

SO = "/api/v1/Webhook"
EC = "/api/v3/webhook"


def so_body(**over):
    b = {
        "Name": "Orders hook",
        "Events": ["contact.created", "sale.changed"],
        "TargetUrl": "https://receiver.example.com/hooks/1",
        "Secret": "s3cret",
        "State": "Active",
        "Type": "webhook",
        "Headers": {"X-Tenant": "acme"},
        "Properties": {"env": "test", "n": 1},
        "ErrorsEmail": "ops@example.com; dev@example.org",
    }
    b.update(over)
    return b


def ec_body(**over):
    b = {
        "active": True,
        "mailingList": ["ops@example.com"],
        "secret": "ecap-secret",
        "url": "https://ecap.example.com/in",
        "webhookDescription": "from EnergyCAP",
        "webhookEventTypeId": 1,
        "webhookName": "ecap hook",
    }
    b.update(over)
    return b


def create_so(s, **over):
    r = s.request("POST", SO, so_body(**over))
    assert r.status == 200, r
    return r.json()


def user_key(s, code, perm):
    s.cli("user", "add", "--code", code, "--name", code.title() + " User", "--perm", perm)
    return s.cli("key", "create", "--user", code).stdout.strip()


def test_round_trip_across_dialects():
    with Server() as s:
        # Create in SuperOffice shape.
        w = create_so(s)
        wid = w["WebhookId"]
        assert wid >= 1
        assert w["Name"] == "Orders hook" and w["Events"] == ["contact.created", "sale.changed"]
        assert w["State"] == "Active" and w["Type"] == "webhook"
        assert w["ErrorsEmail"] == "ops@example.com,dev@example.org"
        assert w["Headers"] == {"X-Tenant": "acme"} and w["Properties"] == {"env": "test", "n": 1}
        assert w["RegisteredAssociate"]["Name"] == "admin"
        assert w["Registered"].endswith("Z") and len(w["Registered"]) == len("2026-11-22T10:00:00.0000000Z")
        assert w["Updated"] == w["Registered"]
        host = "%s:%d" % (s.host, s.port)
        assert w["_Links"] == {"Self": "http://%s/api/v1/Webhook/%d" % (host, wid),
                               "Archive": "http://%s/api/v1/Webhook" % host}

        # Read it in EnergyCAP shape.
        r = s.request("GET", "%s/%d" % (EC, wid), auth="eci")
        assert r.status == 200, r
        e = r.json()
        assert e["webhookId"] == wid and e["webhookName"] == "Orders hook"
        assert e["url"] == w["TargetUrl"] and e["secret"] == "s3cret"
        assert e["active"] is True and e["webhookStatus"] == "Active"
        assert e["mailingList"] == ["ops@example.com", "dev@example.org"]
        assert e["eventType"]["webhookEventTypeName"] == "contact.created"
        assert e["locked"] is False
        assert e["createdBy"] == {"fullName": "Administrator", "userCode": "admin", "userId": 1} or \
            e["createdBy"]["userCode"] == "admin"
        assert e["createdDate"].startswith(w["Registered"][:19]) and e["createdDate"].endswith("Z")
        assert e["successRate"] == 0.0  # no deliveries yet
        types = {t["webhookEventTypeName"]: t["webhookEventTypeId"]
                 for t in s.request("GET", EC + "/eventType").json()}
        assert e["eventType"]["webhookEventTypeId"] == types["contact.created"]
        assert set(types) >= {"contact.created", "sale.changed"}

        # Edit it with the EnergyCAP PUT.
        time.sleep(1.1)  # Updated moves to a later second
        r = s.request("PUT", "%s/%d" % (EC, wid), ec_body(webhookEventTypeId=types["sale.changed"], active=False,
                                                          webhookName="renamed", mailingList=["a@x.io", "b@y.io"],
                                                          secret="rotated"), auth="eci")
        assert r.status == 200, r
        e2 = r.json()
        assert e2["webhookName"] == "renamed" and e2["webhookStatus"] == "Stopped" and e2["active"] is False
        assert e2["webhookDescription"] == "from EnergyCAP"

        # Read the change back in SuperOffice shape.
        w2 = s.request("GET", "%s/%d" % (SO, wid)).json()
        assert w2["Name"] == "renamed" and w2["State"] == "Stopped"
        assert w2["Events"] == ["sale.changed"]  # the PUT's event type replaces the list
        assert w2["TargetUrl"] == "https://ecap.example.com/in" and w2["Secret"] == "rotated"
        assert w2["ErrorsEmail"] == "a@x.io,b@y.io"
        assert w2["Headers"] == {"X-Tenant": "acme"} and w2["Properties"] == {"env": "test", "n": 1}
        assert w2["Registered"] == w["Registered"] and w2["Updated"] > w["Updated"]

        # PATCH both ways.
        r = s.request("PATCH", "%s/%d" % (SO, wid),
                      json.dumps([{"op": "test", "path": "/name", "value": "renamed"},
                                  {"op": "replace", "path": "state", "value": "Active"},
                                  {"op": "add", "path": "/Events/-", "value": "person.deleted"},
                                  {"op": "remove", "path": "/HEADERS/X-Tenant"}]),
                      headers={"Content-Type": "application/json-patch+json"})
        assert r.status == 200, r
        p = r.json()
        assert p["State"] == "Active" and p["Events"] == ["sale.changed", "person.deleted"] and p["Headers"] == {}
        r = s.request("PATCH", "%s/%d" % (SO, wid), json.dumps({"name": "merged", "Properties": {"n": None}}),
                      headers={"Content-Type": "application/merge-patch+json"})
        assert r.status == 200, r
        m = r.json()
        assert m["Name"] == "merged" and m["Properties"] == {"env": "test"} and m["State"] == "Active"
        e3 = s.request("GET", "%s/%d" % (EC, wid), auth="eci").json()
        assert e3["webhookName"] == "merged" and e3["active"] is True
        types = {t["webhookEventTypeName"] for t in s.request("GET", EC + "/eventType").json()}
        assert "person.deleted" in types

        # Delete it; 404 after, in both dialects.
        r = s.request("DELETE", "%s/%d" % (SO, wid))
        assert r.status == 204 and r.body == b"", r
        for path, auth in (("%s/%d" % (SO, wid), "bearer"), ("%s/%d" % (EC, wid), "eci")):
            r = s.request("GET", path, auth=auth)
            assert r.status == 404, r
        assert s.request("DELETE", "%s/%d" % (EC, wid), auth="eci").status == 404
        assert s.request("GET", SO).json() == []


def test_energycap_create_and_delete():
    with Server() as s:
        create_so(s, Events=["meter.read"])
        tid = s.request("GET", EC + "/eventType").json()[0]["webhookEventTypeId"]
        r = s.request("POST", EC, ec_body(webhookEventTypeId=tid, extension="EcapExt"), auth="eci")
        assert r.status == 200, r
        e = r.json()
        assert e["webhookName"] == "ecap hook" and e["eventType"] == {"webhookEventTypeId": tid,
                                                                      "webhookEventTypeName": "meter.read"}
        assert e["extension"] == "EcapExt"
        w = s.request("GET", "%s/%d" % (SO, e["webhookId"])).json()
        assert w["Extension"] == "EcapExt" and w["Events"] == ["meter.read"] and w["Secret"] == "ecap-secret"
        r = s.request("DELETE", "%s/%d" % (EC, e["webhookId"]), auth="eci")
        assert r.status == 204, r
        assert s.request("GET", "%s/%d" % (SO, e["webhookId"])).status == 404


def test_ids_are_never_reused():
    with Server() as s:
        a = create_so(s)["WebhookId"]
        assert s.request("DELETE", "%s/%d" % (SO, a)).status == 204
        b = create_so(s)["WebhookId"]
        assert b > a


def test_default_and_rpc_twins():
    with Server() as s:
        r = s.request("GET", SO + "/default")
        assert r.status == 200, r
        d = r.json()
        assert d["WebhookId"] == 0 and d["State"] == "Active" and d["Type"] == "webhook" and d["Events"] == []
        assert s.request("GET", SO).json() == []  # not saved
        r = s.request("POST", "/api/v1/Agents/Webhook/CreateDefaultWebhook")
        assert r.status == 200 and r.json()["Type"] == "webhook", r

        # SaveWebhook creates when the id is 0 or absent.
        r = s.request("POST", "/api/v1/Agents/Webhook/SaveWebhook", so_body(WebhookId=0, Name="rpc"))
        assert r.status == 200, r
        wid = r.json()["WebhookId"]
        assert wid > 0 and "_Links" not in r.json()
        # ... and updates otherwise.
        r = s.request("POST", "/api/v1/Agents/Webhook/SaveWebhook", so_body(WebhookId=wid, Name="rpc2"))
        assert r.status == 200 and r.json()["WebhookId"] == wid and r.json()["Name"] == "rpc2", r
        r = s.request("POST", "/api/v1/Agents/Webhook/SaveWebhook", so_body(WebhookId=999, Name="x"))
        assert r.status == 404, r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetWebhook?webhookId=%d" % wid)
        assert r.status == 200 and r.json()["Name"] == "rpc2", r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetWebhook", {"WebhookId": wid})
        assert r.status == 200 and r.json()["Name"] == "rpc2", r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetWebhook?webhookId=%d&$select=Name" % wid)
        assert r.json()["Name"] == "rpc2" and r.json()["TargetUrl"] is None, r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetWebhook")
        assert r.status == 400 and "webhookId" in r.json()["Message"], r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetAllWebhooks", {"NameFilter": "rpc"})
        assert r.status == 200 and [w["WebhookId"] for w in r.json()] == [wid], r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetAllWebhooks", {"NameFilter": "nomatch"})
        assert r.json() == [], r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetAllWebhooks", {"StatusFilter": "Stopped"})
        assert r.json() == [], r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetAllWebhooks")
        assert len(r.json()) == 1, r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetLastError?webhookId=%d" % wid)
        assert r.status == 200 and r.json() == "", r
        r = s.request("GET", "%s/%d/LastError" % (SO, wid))
        assert r.status == 200 and r.json() == "", r
        assert s.request("GET", "%s/%d/LastError" % (SO, wid + 100)).status == 404
        r = s.request("POST", "/api/v1/Agents/Webhook/DeleteWebhook?WebhookId=%d" % wid)
        assert r.status == 204, r
        # Agents calls have no HTTP semantics: a webhook that does not exist reads as null.
        r = s.request("POST", "/api/v1/Agents/Webhook/GetWebhook?webhookId=%d" % wid)
        assert r.status == 200 and r.body == b"null", r


def test_auth_statuses():
    with Server() as s:
        wid = create_so(s)["WebhookId"]
        viewer = user_key(s, "viewer", "ApplicationSettings:View")
        signaller = user_key(s, "signaller", "Events:Signal")
        for method, path, body in (("GET", SO, None), ("POST", SO, so_body()), ("GET", "%s/%d" % (EC, wid), None),
                                   ("PUT", "%s/%d" % (EC, wid), ec_body()), ("GET", EC + "/eventType", None)):
            assert s.request(method, path, body, key=None).status == 401, (method, path)
            assert s.request(method, path, body, key="hk_wrong").status == 401, (method, path)
            assert s.request(method, path, body, key=signaller).status == 403, (method, path)
        # View may read but not write.
        assert s.request("GET", "%s/%d" % (SO, wid), key=viewer).status == 200
        assert s.request("GET", EC, key=viewer, auth="eci").status == 200
        for method, path, body in (("POST", SO, so_body()), ("PUT", "%s/%d" % (SO, wid), so_body()),
                                   ("PATCH", "%s/%d" % (SO, wid), {"Name": "x"}), ("DELETE", "%s/%d" % (SO, wid), None),
                                   ("POST", EC, ec_body()), ("PUT", "%s/%d" % (EC, wid), ec_body()),
                                   ("DELETE", "%s/%d" % (EC, wid), None),
                                   ("POST", "/api/v1/Agents/Webhook/SaveWebhook", so_body())):
            r = s.request(method, path, body, key=viewer)
            assert r.status == 403, (method, path, r)
            assert "ApplicationSettings:Manage" in r.body.decode(), r
        assert s.request("GET", "%s/%d" % (SO, wid)).json()["Name"] == "Orders hook"


def test_registered_by_the_authenticated_user():
    with Server() as s:
        key = user_key(s, "manager", "ApplicationSettings:Manage")
        w = s.request("POST", SO, so_body(), key=key).json()
        assert w["RegisteredAssociate"]["Name"] == "manager"
        assert w["RegisteredAssociate"]["FullName"] == "Manager User"
        wid = w["WebhookId"]
        w2 = s.request("PUT", "%s/%d" % (SO, wid), so_body(Name="by admin")).json()
        assert w2["RegisteredAssociate"]["Name"] == "manager" and w2["UpdatedAssociate"]["Name"] == "admin"
        e = s.request("GET", "%s/%d" % (EC, wid), auth="eci").json()
        assert e["createdBy"]["userCode"] == "manager" and e["createdBy"]["fullName"] == "Manager User"


def test_validation_rules_superoffice():
    with Server() as s:
        wid = create_so(s)["WebhookId"]
        cases = [
            (so_body(TargetUrl="ftp://example.com/x"), "TargetUrl"),
            (so_body(TargetUrl="/relative/path"), "TargetUrl"),
            (so_body(TargetUrl="http://"), "TargetUrl"),
            (so_body(TargetUrl="https://:80/x"), "TargetUrl"),
            (so_body(TargetUrl="http://exa mple.com/"), "TargetUrl"),
            (so_body(TargetUrl=None), "TargetUrl"),
            (so_body(TargetUrl=12), "TargetUrl"),
            (so_body(Type="crmscript"), "not supported"),
            (so_body(Type="email"), "not supported"),
            (so_body(State="TooManyErrors"), "State"),
            (so_body(State=3), "State"),
            (so_body(State="Sleeping"), "State"),
            (so_body(Name="x" * 65), "Name"),
            (so_body(Name=["list"]), "Name"),
            (so_body(Events="contact.created"), "Events"),
            (so_body(Events=["has space"]), "Events"),
            (so_body(Events=[7]), "Events"),
            (so_body(Headers={"Content-Type": "text/plain"}), "Headers"),
            (so_body(Headers={"X-SuperOffice-Signature": "forged"}), "Headers"),
            (so_body(Headers={"X-Ok": 5}), "Headers"),
            (so_body(Headers=["x"]), "Headers"),
            (so_body(Properties="x"), "Properties"),
            (so_body(ErrorsEmail="not-an-address"), "ErrorsEmail"),
            (so_body(ErrorsEmail=["a@b.com"]), "ErrorsEmail"),
            (so_body(Secret=42), "Secret"),
            (so_body(Extension=5), "Extension"),
            (so_body(Extension="has space"), "Extension"),
        ]
        for body, word in cases:
            for method, path in (("POST", SO), ("PUT", "%s/%d" % (SO, wid))):
                r = s.request(method, path, body)
                assert r.status == 400, (body, r)
                assert word in r.json()["Message"], (word, r)
        for bad in ("{not json", "[1,2]", "\"str\""):
            r = s.request("POST", SO, bad, headers={"Content-Type": "application/json"})
            assert r.status == 400, (bad, r)
        r = s.request("POST", SO, "")
        assert r.status == 400, r
        # Unknown properties are ignored; exactly 64 characters (not bytes) is fine.
        name = "\u00e9" * 64
        r = s.request("POST", SO, so_body(Name=name, Unknown={"x": 1}, WebhookId=77))
        assert r.status == 200 and r.json()["Name"] == name and r.json()["WebhookId"] != 77, r
        # Nothing invalid was stored.
        assert len(s.request("GET", SO).json()) == 2
        assert s.request("GET", "%s/%d" % (SO, wid)).json()["Name"] == "Orders hook"


def test_validation_rules_energycap():
    with Server() as s:
        wid = create_so(s)["WebhookId"]
        path = "%s/%d" % (EC, wid)
        for field in ("active", "mailingList", "secret", "url", "webhookDescription", "webhookEventTypeId",
                      "webhookName"):
            b = ec_body()
            del b[field]
            r = s.request("PUT", path, b, auth="eci")
            assert r.status == 400, (field, r)
            j = r.json()
            assert j["status"] == 400 and field in j["errors"], (field, j)
            b[field] = None
            r = s.request("PUT", path, b, auth="eci")
            assert r.status == 400 and field in r.json()["errors"], (field, r)
        cases = [
            (ec_body(mailingList=[]), "mailingList"),
            (ec_body(mailingList=["nobody"]), "mailingList"),
            (ec_body(mailingList=["a@b.com", "x@"]), "mailingList"),
            (ec_body(mailingList="a@b.com"), "mailingList"),
            (ec_body(webhookName="n" * 65), "webhookName"),
            (ec_body(webhookEventTypeId=9999), "webhookEventTypeId"),
            (ec_body(webhookEventTypeId="1"), "webhookEventTypeId"),
            (ec_body(active="yes"), "active"),
            (ec_body(url="mailto:a@b.com"), "url"),
            (ec_body(secret=""), "secret"),
            (ec_body(webhookDescription=5), "webhookDescription"),
            (ec_body(extension=["x"]), "extension"),
        ]
        for body, field in cases:
            for method, p in (("PUT", path), ("POST", EC)):
                r = s.request(method, p, body, auth="eci")
                assert r.status == 400, (body, r)
                j = r.json()
                assert field in j["errors"] and field in j["message"], (field, j)
        r = s.request("PUT", path, ec_body(webhookName=""), auth="eci")
        assert r.status == 200 and r.json()["webhookName"] == "", r
        r = s.request("PUT", path, ec_body(webhookName="n" * 64, unknownField=1), auth="eci")
        assert r.status == 200, r
        assert s.request("PUT", EC + "/999", ec_body(), auth="eci").status == 404
        assert s.request("GET", EC + "/abc", auth="eci").status == 404


def test_extension_unique_and_case_sensitive():
    with Server() as s:
        a = create_so(s, Extension="MyHook")["WebhookId"]
        r = s.request("POST", SO, so_body(Extension="MyHook"))
        assert r.status == 400 and "Extension" in r.json()["Message"], r
        r = s.request("POST", SO, so_body(Extension="myhook"))
        assert r.status == 200 and r.json()["Extension"] == "myhook", r
        b = r.json()["WebhookId"]
        tid = s.request("GET", EC + "/eventType").json()[0]["webhookEventTypeId"]
        r = s.request("PUT", "%s/%d" % (EC, b), ec_body(webhookEventTypeId=tid, extension="MyHook"), auth="eci")
        assert r.status == 400 and "extension" in r.json()["errors"], r
        # The failed edit changed nothing.
        assert s.request("GET", "%s/%d" % (SO, b)).json()["Extension"] == "myhook"
        # Saving a webhook with its own extension is fine; freeing it lets another take it.
        assert s.request("PUT", "%s/%d" % (SO, a), so_body(Extension="MyHook")).status == 200
        assert s.request("PATCH", "%s/%d" % (SO, a), {"Extension": None}).json()["Extension"] is None
        r = s.request("PATCH", "%s/%d" % (SO, b), {"Extension": "MyHook"})
        assert r.status == 200 and r.json()["Extension"] == "MyHook", r


def test_patch_statuses():
    with Server() as s:
        wid = create_so(s)["WebhookId"]
        path = "%s/%d" % (SO, wid)
        jp = {"Content-Type": "application/json-patch+json"}
        r = s.request("PATCH", path, json.dumps([{"op": "test", "path": "/Name", "value": "other"},
                                                 {"op": "replace", "path": "/Name", "value": "changed"}]), headers=jp)
        assert r.status == 409, r
        assert s.request("GET", path).json()["Name"] == "Orders hook"
        for bad in ([{"op": "replace", "path": "/Nope", "value": 1}], [{"op": "jump", "path": "/Name"}],
                    [{"op": "add", "path": "/Name"}], {"op": "add"}):
            r = s.request("PATCH", path, json.dumps(bad), headers=jp)
            assert r.status == 400, (bad, r)
        r = s.request("PATCH", path, json.dumps([{"op": "replace", "path": "/TargetUrl", "value": "nope"}]),
                      headers=jp)
        assert r.status == 400 and "TargetUrl" in r.json()["Message"], r
        r = s.request("PATCH", path, json.dumps([{"op": "replace", "path": "/State", "value": "TooManyErrors"}]),
                      headers=jp)
        assert r.status == 400 and "State" in r.json()["Message"], r
        r = s.request("PATCH", path, json.dumps(["x"]), headers={"Content-Type": "application/merge-patch+json"})
        assert r.status == 400, r
        assert s.request("PATCH", SO + "/4242", {"Name": "x"}).status == 404
        # Plain application/json: an array is a JSON Patch, an object a merge patch.
        r = s.request("PATCH", path, [{"op": "replace", "path": "Name", "value": "via array"}])
        assert r.status == 200 and r.json()["Name"] == "via array", r
        r = s.request("PATCH", path, {"NAME": "via object"})
        assert r.status == 200 and r.json()["Name"] == "via object", r

        # If-Unmodified-Since: 412 when older than Updated, HTTP or ISO dates.
        updated = s.request("GET", path).json()["Updated"]
        old = email.utils.formatdate(time.time() - 3600, usegmt=True)
        r = s.request("PATCH", path, {"Name": "late"}, headers={"If-Unmodified-Since": old})
        assert r.status == 412, r
        r = s.request("PATCH", path, {"Name": "late"}, headers={"If-Unmodified-Since": "2001-01-01T00:00:00Z"})
        assert r.status == 412, r
        r = s.request("PUT", path, so_body(), headers={"If-Unmodified-Since": old})
        assert r.status == 412, r
        assert s.request("GET", path).json()["Updated"] == updated
        now = email.utils.formatdate(time.time() + 5, usegmt=True)
        r = s.request("PATCH", path, {"Name": "on time"}, headers={"If-Unmodified-Since": now})
        assert r.status == 200 and r.json()["Name"] == "on time", r
        # The same second as Updated is not older.
        upd = s.request("GET", path).json()["Updated"]
        r = s.request("PATCH", path, {"Name": "same second"}, headers={"If-Unmodified-Since": upd[:19] + "Z"})
        assert r.status == 200, r


def test_secret_rotation_keeps_data():
    with Server() as s:
        wid = create_so(s)["WebhookId"]
        r = s.request("PATCH", "%s/%d" % (SO, wid), {"Secret": "new-secret"})
        assert r.status == 200 and r.json()["Secret"] == "new-secret"
        e = s.request("GET", "%s/%d" % (EC, wid), auth="eci").json()
        assert e["secret"] == "new-secret"


def test_locked_webhook_refuses_edits_and_keeps_data():
    with Server() as s:
        wid = create_so(s)["WebhookId"]
        before = s.request("GET", "%s/%d" % (SO, wid)).json()
        p = s.cli("webhook", "lock", str(wid))
        assert "locked" in p.stdout, p.stdout
        e = s.request("GET", "%s/%d" % (EC, wid), auth="eci").json()
        assert e["locked"] is True
        tid = e["eventType"]["webhookEventTypeId"]
        for method, path, body, auth in (("PUT", "%s/%d" % (EC, wid), ec_body(webhookEventTypeId=tid), "eci"),
                                         ("DELETE", "%s/%d" % (EC, wid), None, "eci"),
                                         ("PUT", "%s/%d" % (SO, wid), so_body(Name="x"), "bearer"),
                                         ("PATCH", "%s/%d" % (SO, wid), {"Name": "x"}, "bearer"),
                                         ("DELETE", "%s/%d" % (SO, wid), None, "bearer")):
            r = s.request(method, path, body, auth=auth)
            assert r.status == 400, (method, path, r)
            assert "locked" in r.body.decode(), r
        after = s.request("GET", "%s/%d" % (SO, wid)).json()
        assert after == before
        s.cli("webhook", "unlock", str(wid))
        assert s.request("GET", "%s/%d" % (EC, wid), auth="eci").json()["locked"] is False
        r = s.request("PUT", "%s/%d" % (EC, wid), ec_body(webhookEventTypeId=tid), auth="eci")
        assert r.status == 200, r
        assert s.request("DELETE", "%s/%d" % (EC, wid), auth="eci").status == 204
        p = s.cli("webhook", "lock", str(wid), check=False)
        assert p.returncode != 0


def test_test_on_save_commits_only_after_a_passing_test_call():
    from receiver import Receiver
    env = {"HOOKD_REGISTRY_TEST_ON_SAVE": "on", "HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}
    with Server(env=env) as s, Receiver() as good, Receiver() as bad:
        bad.reply(status=500, body=b"down for maintenance")
        r = s.request("POST", SO, so_body(TargetUrl=bad.url + "/hook"))
        assert r.status == 400, r
        assert "TargetUrl" in r.json()["Message"] and "500" in r.json()["Message"], r.json()
        assert s.request("GET", SO).json() == []
        test_call = bad.wait_for(1)[0]
        assert test_call.header("X-Hook-Test") == "true" and test_call.json()["Event"] == "test"
        r = s.request("POST", SO, so_body(TargetUrl=good.url + "/hook"))
        assert r.status == 200, r
        wid = r.json()["WebhookId"]
        assert good.wait_for(1)[0].json()["Event"] == "test"
        # An edit that would point it at a failing target is refused and changes nothing.
        r = s.request("PATCH", "%s/%d" % (SO, wid), [{"op": "replace", "path": "TargetUrl", "value": bad.url}],
                      headers={"Content-Type": "application/json-patch+json"})
        assert r.status == 400, r
        assert s.request("GET", "%s/%d" % (SO, wid)).json()["TargetUrl"] == good.url + "/hook"
        # The EnergyCAP dialect does not test on save.
        r = s.request("PUT", "%s/%d" % (EC, wid), ec_body(url=bad.url + "/x"), auth="eci")
        assert r.status == 200, r


def test_everything_survives_restart():
    with Server() as s:
        w = create_so(s, Extension="Persisted")
        wid = w["WebhookId"]
        s.cli("webhook", "lock", str(wid))
        types = s.request("GET", EC + "/eventType").json()
        ec = s.request("GET", "%s/%d" % (EC, wid), auth="eci").json()
        s.restart()
        w2 = s.request("GET", "%s/%d" % (SO, wid)).json()
        w.pop("_Links")
        w2.pop("_Links")
        assert w2 == w
        assert s.request("GET", EC + "/eventType").json() == types
        assert s.request("GET", "%s/%d" % (EC, wid), auth="eci").json() == ec
        assert s.request("DELETE", "%s/%d" % (SO, wid)).status == 400
        r = s.request("POST", SO, so_body(Extension="Persisted"))
        assert r.status == 400, r
        assert create_so(s)["WebhookId"] > wid


if __name__ == "__main__":
    run(globals())
