"""End to end: registry lists, filters, $select, statistics and a thousand webhooks."""
import ctypes
import ctypes.util
import json
import struct
import threading
import urllib.parse

from hookd_test import Server, lmdb_only, run

SO = "/api/v1/Webhook"
EC = "/api/v3/webhook"


def so_body(name, events, **over):
    b = {"Name": name, "Events": events, "TargetUrl": "https://r.example.com/" + q(name), "Secret": "s"}
    b.update(over)
    return b


def create(s, name, events, **over):
    r = s.request("POST", SO, so_body(name, events, **over))
    assert r.status == 200, r
    return r.json()["WebhookId"]


def ids(r):
    assert r.status == 200, r
    key = "WebhookId" if r.json() and "WebhookId" in r.json()[0] else "webhookId"
    return sorted(w[key] for w in r.json())


def q(s):
    return urllib.parse.quote(s, safe="")


# -- direct store access (the server's statistics are written by deliveries; tests seed them) --------------

class MDBVal(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.c_void_p)]


class Store:
    """A minimal LMDB client over the system liblmdb, to seed and read what only deliveries write."""

    def __init__(self, path):
        name = ctypes.util.find_library("lmdb") or "liblmdb.so.0"
        self.lib = ctypes.CDLL(name)
        self.env = ctypes.c_void_p()
        assert self.lib.mdb_env_create(ctypes.byref(self.env)) == 0
        self.lib.mdb_env_set_maxdbs(self.env, 32)
        assert self.lib.mdb_env_open(self.env, path.encode(), 0x200000, 0o600) == 0  # MDB_NOTLS

    def _txn(self, write):
        txn = ctypes.c_void_p()
        assert self.lib.mdb_txn_begin(self.env, None, 0 if write else 0x20000, ctypes.byref(txn)) == 0
        return txn

    def _dbi(self, txn, name):
        dbi = ctypes.c_uint()
        assert self.lib.mdb_dbi_open(txn, name.encode(), 0, ctypes.byref(dbi)) == 0
        return dbi

    def get(self, db, key):
        txn = self._txn(False)
        try:
            k = ctypes.create_string_buffer(key, len(key))
            kv = MDBVal(len(key), ctypes.cast(k, ctypes.c_void_p))
            v = MDBVal()
            rc = self.lib.mdb_get(txn, self._dbi(txn, db), ctypes.byref(kv), ctypes.byref(v))
            return None if rc != 0 else ctypes.string_at(v.data, v.size)
        finally:
            self.lib.mdb_txn_abort(txn)

    def put(self, db, key, value):
        txn = self._txn(True)
        k = ctypes.create_string_buffer(key, len(key))
        d = ctypes.create_string_buffer(value, len(value))
        kv = MDBVal(len(key), ctypes.cast(k, ctypes.c_void_p))
        dv = MDBVal(len(value), ctypes.cast(d, ctypes.c_void_p))
        assert self.lib.mdb_put(txn, self._dbi(txn, db), ctypes.byref(kv), ctypes.byref(dv), 0) == 0
        assert self.lib.mdb_txn_commit(txn) == 0

    def close(self):
        self.lib.mdb_env_close(self.env)


def stats_pack(calls, errors, consecutive, last_ms, text):
    """Statistics in the stored format 0, which the server still reads."""
    return struct.pack(">QQIQ", calls, errors, consecutive, last_ms) + text.encode()


def stats_unpack(b):
    """Stored statistics, format 1 (a version byte first) or 0 (src/state/webhook.c)."""
    if b[0] == 1:
        b = b[1:]
    calls, errors, consecutive, last_ms = struct.unpack(">QQIQ", b[:28])
    return calls, errors, consecutive, last_ms, b[28:].decode()


def webhook_record(raw):
    """A stored webhook as the members of its JSON record (format 0 is that JSON; format 1 is binary,
    laid out in src/state/webhook.c). Writing the JSON back stores format 0, which the server still reads."""
    if raw[:1] == b"{":
        return json.loads(raw)
    assert raw[0] == 1, raw[:1]
    state, flags, wid, reg, reg_by, upd, upd_by, prev_until = struct.unpack(">BBIQIQIQ", raw[1:39])
    off = 39

    def num():
        nonlocal off
        (n,) = struct.unpack(">I", raw[off:off + 4])
        off += 4
        return n

    def text():
        nonlocal off
        n = num()
        if n == 0xFFFFFFFF:
            return None
        v = raw[off:off + n].decode()
        off += n
        return v

    name, description, url, secret, prev_secret, extension = (text() for _ in range(6))
    events = [text() for _ in range(num())]
    headers = dict((text(), text()) for _ in range(num()))
    properties = dict((text(), json.loads(text())) for _ in range(num()))
    notify = [text() for _ in range(num())]
    return {"id": wid, "name": name, "description": description, "events": events, "url": url, "secret": secret,
            "state": ["Active", "Stopped", "TooManyErrors"][state], "type": "webhook", "headers": headers,
            "properties": properties, "notify": notify, "locked": bool(flags & 1), "extension": extension,
            "registered": reg, "registeredBy": reg_by, "updated": upd, "updatedBy": upd_by,
            "prevSecret": prev_secret, "prevSecretUntil": prev_until}


# -- tests ---------------------------------------------------------------------------------------------

def test_select_nulls_other_properties():
    with Server() as s:
        wid = create(s, "sel", ["a.b"], Extension="SelExt")
        r = s.request("GET", "%s/%d?$select=name,TARGETURL" % (SO, wid))
        w = r.json()
        assert w["Name"] == "sel" and w["TargetUrl"] == "https://r.example.com/sel"
        for k in ("WebhookId", "Events", "Secret", "State", "Type", "Headers", "Properties", "Registered",
                  "RegisteredAssociate", "Updated", "UpdatedAssociate", "ErrorsEmail", "Extension"):
            assert k in w and w[k] is None, (k, w)
        assert w["_Links"]["Self"].endswith("/api/v1/Webhook/%d" % wid)
        r = s.request("GET", "%s?$select=WebhookId,Extension" % SO)
        assert r.json() == [{**{k: None for k in w if k != "_Links"}, "WebhookId": wid, "Extension": "SelExt"}], r
        r = s.request("POST", "%s?$select=State" % SO, so_body("sel2", []))
        assert r.status == 200 and r.json()["State"] == "Active" and r.json()["Name"] is None, r
        wid2 = s.request("GET", SO).json()[-1]["WebhookId"]
        r = s.request("PUT", "%s/%d?$select=Name" % (SO, wid2), so_body("sel3", []))
        assert r.json()["Name"] == "sel3" and r.json()["TargetUrl"] is None, r
        r = s.request("PATCH", "%s/%d?$select=RegisteredAssociate/FullName" % (SO, wid2), {"Name": "sel4"})
        assert r.json()["Name"] is None and r.json()["RegisteredAssociate"]["FullName"] == "Administrator", r
        r = s.request("GET", "%s/default?$select=Type" % SO)
        assert r.json()["Type"] == "webhook" and r.json()["State"] is None, r
        r = s.request("GET", "%s/%d?$select=NoSuchThing" % (SO, wid))
        assert r.status == 200 and r.json()["Name"] is None, r
        # Without $select everything is filled.
        assert s.request("GET", "%s/%d" % (SO, wid)).json()["Secret"] == "s"


def test_superoffice_list_filters():
    with Server() as s:
        a = create(s, "Orders Alpha", ["contact.created", "sale.changed"])
        b = create(s, "orders beta", ["sale.changed"], State="Stopped")
        c = create(s, "Gamma", ["Person.Deleted"])
        d = create(s, "", [])
        assert ids(s.request("GET", SO)) == [a, b, c, d]
        assert ids(s.request("GET", SO + "?nameFilter=orders")) == [a, b]
        assert ids(s.request("GET", SO + "?nameFilter=ALPHA")) == [a]
        assert s.request("GET", SO + "?nameFilter=zzz").json() == []
        assert ids(s.request("GET", SO + "?eventFilter=sale.changed")) == [a, b]
        assert ids(s.request("GET", SO + "?eventFilter=person.deleted")) == [c]
        assert s.request("GET", SO + "?eventFilter=sale").json() == []
        assert ids(s.request("GET", SO + "?statusFilter=Active")) == [a, c, d]
        assert ids(s.request("GET", SO + "?statusFilter=stopped")) == [b]
        assert s.request("GET", SO + "?statusFilter=TooManyErrors").json() == []
        assert ids(s.request("GET", SO + "?statusFilter=Unknown")) == [a, b, c, d]
        assert ids(s.request("GET", SO + "?nameFilter=orders&eventFilter=sale.changed&statusFilter=Active")) == [a]
        r = s.request("GET", SO + "?statusFilter=Sleeping")
        assert r.status == 400 and "statusFilter" in r.json()["Message"], r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetAllWebhooks",
                      {"NameFilter": "orders", "EventFilter": "contact.created", "StatusFilter": "Unknown"})
        assert ids(r) == [a]
        r = s.request("POST", "/api/v1/Agents/Webhook/GetAllWebhooks", {"StatusFilter": "Nope"})
        assert r.status == 400, r


def test_energycap_filters():
    with Server() as s:
        a = create(s, "Orders Alpha", ["contact.created", "sale.changed"])
        b = create(s, "orders beta", ["sale.changed"], State="Stopped")
        c = create(s, "Gamma", ["person.deleted"], TargetUrl="http://other.example.net/x")
        types = {t["webhookEventTypeName"]: t["webhookEventTypeId"]
                 for t in s.request("GET", EC + "/eventType").json()}

        def f(expr):
            return s.request("GET", EC + "?filter=" + q(expr), auth="eci")

        assert ids(f("")) == [a, b, c]
        assert ids(f('webhookName equals "Gamma"')) == [c]
        assert ids(f("webhookName equals 'orders beta'")) == [b]
        assert ids(f('webhookName not equals "Gamma"')) == [a, b]
        assert ids(f('webhookName like "orders"')) == [a, b]
        assert ids(f('webhookName like "%beta"')) == [b]
        assert ids(f('webhookName like "o_ders%"')) == [a, b]
        assert ids(f('webhookName not like "orders"')) == [c]
        assert ids(f('url like "other.example"')) == [c]
        assert ids(f("webhookEventTypeId equals %d" % types["sale.changed"])) == [a, b]
        assert ids(f("webhookEventTypeId equals %d" % types["person.deleted"])) == [c]
        assert ids(f("webhookEventTypeId one of %d|%d" % (types["contact.created"],
                                                          types["person.deleted"]))) == [a, c]
        assert ids(f("webhookEventTypeId not equals %d" % types["sale.changed"])) == [c]
        assert ids(f("webhookStatus equals Stopped")) == [b]
        assert ids(f('webhookStatus one of "Active","Stopped"')) == [a, b, c]
        assert ids(f("webhookStatus not equals Active")) == [b]
        assert f("webhookStatus equals TooManyErrors").json() == []
        assert ids(f('webhookName like "orders" and webhookStatus equals "Active"')) == [a]
        assert ids(f("webhookId one of %d|%d" % (a, c))) == [a, c]
        assert ids(f("active equals false")) == [b]
        for bad in ("nosuchfield equals 1", "webhookName frobs 1", 'webhookName equals "open',
                    "webhookEventTypeId equals abc", "webhookName equals x or webhookId equals 1",
                    "webhookName equals x and"):
            r = f(bad)
            assert r.status == 400, (bad, r)
            assert "filter" in r.json()["errors"], (bad, r)


@lmdb_only("seeds the statistics and state in the LMDB file directly, as only deliveries write them; through PostgreSQL the same comes from real failures in test_failure_visibility.py and test_cluster.py")
def test_statistics_last_error_and_reactivation():
    with Server() as s:
        wid = create(s, "failing", ["x.y"], Headers={"X-A": "1"})
        s.stop()
        st = Store(s.data)
        key = struct.pack(">I", wid)
        rec = webhook_record(st.get("webhooks", key))
        rec["state"] = "TooManyErrors"
        st.put("webhooks", key, json.dumps(rec).encode())
        st.put("stats", key, stats_pack(4, 1, 10, 1700000000000, "HTTP 500 from r.example.com"))
        st.close()
        s.start()
        r = s.request("GET", "%s/%d/LastError" % (SO, wid))
        assert r.status == 200 and r.json() == "HTTP 500 from r.example.com", r
        r = s.request("POST", "/api/v1/Agents/Webhook/GetLastError", {"webhookId": wid})
        assert r.json() == "HTTP 500 from r.example.com", r
        e = s.request("GET", "%s/%d" % (EC, wid), auth="eci").json()
        assert e["successRate"] == 75.0 and e["webhookStatus"] == "TooManyErrors" and e["active"] is False
        assert ids(s.request("GET", SO + "?statusFilter=TooManyErrors")) == [wid]
        # Saving it back unchanged keeps TooManyErrors (the client is not setting it).
        w = s.request("GET", "%s/%d" % (SO, wid)).json()
        r = s.request("PUT", "%s/%d" % (SO, wid), w)
        assert r.status == 200 and r.json()["State"] == "TooManyErrors", r
        r = s.request("PUT", "%s/%d" % (EC, wid), {
            "active": False, "mailingList": ["a@b.com"], "secret": "s", "url": w["TargetUrl"],
            "webhookDescription": "", "webhookEventTypeId": e["eventType"]["webhookEventTypeId"],
            "webhookName": "failing"}, auth="eci")
        assert r.status == 200 and r.json()["webhookStatus"] == "TooManyErrors", r
        # Activating it resets the consecutive-failure count but keeps the totals.
        r = s.request("PATCH", "%s/%d" % (SO, wid), {"State": "Active"})
        assert r.status == 200 and r.json()["State"] == "Active", r
        st = Store(s.data)
        calls, errors, consecutive, _, text = stats_unpack(st.get("stats", key))
        st.close()
        assert (calls, errors, consecutive, text) == (4, 1, 0, "HTTP 500 from r.example.com")
        # And now a client cannot set it back.
        r = s.request("PATCH", "%s/%d" % (SO, wid), {"State": "TooManyErrors"})
        assert r.status == 400 and "State" in r.json()["Message"], r


@lmdb_only("reads the stored record from the LMDB file directly (the previous secret and its end are in no answer)")
def test_secret_change_keeps_previous_for_overlap():
    with Server(env={"HOOKD_DELIVERY_SECRET_OVERLAP": "1h"}) as s:
        wid = create(s, "rot", ["x.y"])
        w = s.request("PATCH", "%s/%d" % (SO, wid), {"Secret": "second"}).json()
        st = Store(s.data)
        rec = webhook_record(st.get("webhooks", struct.pack(">I", wid)))
        st.close()
        assert rec["secret"] == "second" and rec["prevSecret"] == "s"
        assert rec["prevSecretUntil"] - rec["updated"] == 3600 * 1000
        assert w["Secret"] == "second"


def test_thousand_webhooks_in_one_list():
    with Server() as s:
        n, workers = 1000, 8
        made, errors = [], []
        lock = threading.Lock()

        def work(k):
            conn = s.connection()
            try:
                for i in range(k, n, workers):
                    r = s.request("POST", SO, so_body("bulk-%04d" % i, ["bulk.e%d" % (i % 5)]), conn=conn)
                    with lock:
                        (made if r.status == 200 else errors).append(r.json()["WebhookId"] if r.status == 200
                                                                      else r)
            finally:
                conn.close()

        threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert len(set(made)) == n
        r = s.request("GET", SO)
        lst = r.json()
        assert len(lst) == n and sorted(w["WebhookId"] for w in lst) == sorted(made)
        assert sorted(w["Name"] for w in lst) == ["bulk-%04d" % i for i in range(n)]
        r = s.request("GET", EC, auth="eci")
        assert len(r.json()) == n and all(w["url"].startswith("https://r.example.com/bulk-") for w in r.json())
        assert len(s.request("GET", SO + "?eventFilter=bulk.e3").json()) == n // 5
        assert len(s.request("GET", EC + "?filter=" + q('webhookName like "bulk-00%"'), auth="eci").json()) == 100
        assert len(s.request("GET", EC + "/eventType").json()) == 5


if __name__ == "__main__":
    run(globals())
