"""End to end: request handling every dialect shares: EnergyCAP paths without
regard to case, and what a full store answers (body, Retry-After, /readyz)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from hookd_test import ADMIN_KEY, Server, lmdb_only, parse_responses, run

SO_BODY = {"Name": "w", "Events": ["contact.created"], "TargetUrl": "https://example.com/h"}


def test_energycap_paths_ignore_case():
    with Server() as s:
        r = s.request("POST", "/api/v1/Webhook", SO_BODY)
        assert r.status == 200, r
        wid = r.json()["WebhookId"]
        for path in ("/api/v3/Webhook", "/API/V3/WEBHOOK", "/api/v3/webhook"):
            r = s.request("GET", path, auth="eci")
            assert r.status == 200, (path, r)
            assert [w["webhookId"] for w in r.json()] == [wid], (path, r)
        r = s.request("GET", "/Api/V3/Webhook/%d" % wid, auth="eci")
        assert r.status == 200 and r.json()["webhookId"] == wid, r
        r = s.request("GET", "/api/v3/Webhook/EventType", auth="eci")
        assert r.status == 200 and any(t["webhookEventTypeName"] == "contact.created" for t in r.json()), r
        r = s.request("GET", "/api/v3/WEBHOOK/%d/Log?PageSize=5" % wid, auth="eci")
        assert r.status == 200 and r.header("PageSize") == "5", r
        # Parameters keep their case; errors keep the EnergyCAP shape.
        r = s.request("GET", "/API/v3/Webhook/999", auth="eci")
        assert r.status == 404 and "status" in r.json() and "message" in r.json(), r
        r = s.request("GET", "/API/V3/Nothing/here", auth="eci")
        assert r.status == 404 and r.json()["status"] == 404, r
        r = s.request("PATCH", "/api/v3/WebHook/%d" % wid, {}, auth="eci")
        assert r.status == 405 and r.json()["status"] == 405, r
        # Credentials are still required on every spelling.
        r = s.request("GET", "/API/V3/WEBHOOK", key=None)
        assert r.status == 401 and r.header("WWW-Authenticate") == "ECI-ApiKey", r
        r = s.request("PUT", "/API/V202211/Account/CustomAction", {"webhookId": 1, "ids": "x"}, key=None)
        assert r.status == 401 and r.json()["status"] == 401, r


def read_response(sock, timeout=5):
    """Reads one response (head and Content-Length body) from sock; (status, headers, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response: %r" % data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lengths = [ln.split(b":", 1)[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
    n = int(lengths[0]) if lengths else 0  # 100 Continue has none
    while len(rest) < n:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    return parse_responses(head + b"\r\n\r\n" + rest[:n])[0]


def post_head(path, length, key_header=None, expect=False):
    h = "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (path, length)
    if key_header:
        h += key_header + "\r\n"
    if expect:
        h += "Expect: 100-continue\r\n"
    return (h + "\r\n").encode()


def test_credentials_are_checked_before_the_body_is_read():
    with Server() as s:
        s.cli("user", "add", "--code", "viewer", "--name", "Viewer", "--perm", "ApplicationSettings:View")
        viewer = s.cli("key", "create", "--user", "viewer").stdout.strip()
        body_len = 1 << 20
        cases = (("/api/v1/Webhook", None, 401, "Error"),
                 ("/api/v1/Webhook", "Authorization: Bearer hk_wrong", 401, "Error"),
                 ("/api/v3/webhook", "ECI-ApiKey: " + viewer, 403, "status"),
                 ("/api/rest/Webhooks/Execute?extension=x", None, 401, "code"))
        for path, key, status, member in cases:
            for expect in (False, True):
                c = socket.create_connection((s.host, s.port))
                try:
                    # Only the head is sent: the answer must not wait for the body.
                    c.sendall(post_head(path, body_len, key, expect))
                    t0 = time.time()
                    st, headers, body = read_response(c, timeout=5)
                    assert time.time() - t0 < 3, (path, "answered only after %.1fs" % (time.time() - t0))
                    assert st == status, (path, key, st, body)
                    assert member in json.loads(body), body
                    assert headers.get("connection", "").lower() == "close", headers
                    if status == 401 and path.startswith("/api/v1"):
                        assert "Bearer" in headers.get("www-authenticate", ""), headers
                finally:
                    c.close()
        # Many such requests at once are all refused, none waits for its body.
        socks = []
        try:
            for _ in range(50):
                c = socket.create_connection((s.host, s.port))
                c.sendall(post_head("/api/v1/Webhook", body_len))
                socks.append(c)
            assert [read_response(c)[0] for c in socks] == [401] * 50
        finally:
            for c in socks:
                c.close()
        # With valid credentials the body is read and the request handled.
        body = json.dumps(SO_BODY).encode()
        c = socket.create_connection((s.host, s.port))
        try:
            c.sendall(post_head("/api/v1/Webhook", len(body), "Authorization: Bearer " + ADMIN_KEY, True))
            st, _, b = read_response(c)
            assert st == 100, st
            c.sendall(body)
            st, _, b = read_response(c)
            assert st == 200 and json.loads(b)["Name"] == "w", (st, b)
            # A request without a body and without a key keeps the connection.
            c.sendall(b"GET /api/v1/Webhook HTTP/1.1\r\nHost: t\r\n\r\n")
            st, h, _ = read_response(c)
            assert st == 401 and h.get("connection", "").lower() != "close", (st, h)
            c.sendall(b"GET /api/v1/Webhook HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + ADMIN_KEY.encode() +
                      b"\r\n\r\n")
            st, _, b = read_response(c)
            assert st == 200 and len(json.loads(b)) == 1, (st, b)
        finally:
            c.close()


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


@lmdb_only("a full disk under the LMDB file (a small tmpfs); the PostgreSQL outage is test_cluster.py's")
def test_full_store_says_so_with_retry_after_and_readyz_follows_writes():
    mnt = tempfile.mkdtemp(prefix="hookd-tmpfs-")
    ok, why = mount_tmpfs(mnt, "2m")
    if not ok:
        os.rmdir(mnt)
        print("SKIP test_full_store: cannot mount a small tmpfs here (%s)" % (why or "mount failed"))
        return
    try:
        data = os.path.join(mnt, "data")
        with Server(data_dir=data, env={"HOOKD_STORE_MAP_SIZE": "1MiB"}) as s:
            assert s.request("GET", "/readyz", key=None).status == 200
            filler = "x" * 6000
            conn = s.connection()
            full = None
            for i in range(1000):
                body = dict(SO_BODY, Name="w%d" % i, Properties={"pad": filler})
                r = s.request("POST", "/api/v1/Webhook", body=body, conn=conn)
                if r.status == 200:
                    continue
                full = r
                break
            conn.close()
            assert full is not None, "the store never filled"
            # SuperOffice shape; says what happened and when to come back.
            assert full.status == 503, full
            msg = full.json()["Message"]
            assert "storage is full" in msg and "nothing was changed" in msg, full
            assert full.header("Retry-After") is not None and int(full.header("Retry-After")) > 0, full.headers
            # The EnergyCAP dialect answers the same in its shape (small writes
            # may still fit in free pages for a while).
            for i in range(200):
                r = s.request("POST", "/api/v3/webhook", {
                    "webhookName": "e%d" % i, "webhookDescription": "d" * 1024, "url": "https://example.com/h",
                    "secret": "s3cret", "webhookEventTypeId": 1, "active": True, "mailingList": ["ops@example.com"]}, auth="eci")
                if r.status != 200:
                    break
            assert r.status == 503 and r.json()["status"] == 503, r
            assert "storage is full" in r.json()["message"], r
            assert int(r.header("Retry-After")) > 0, r.headers
            # Not ready while writes fail, still alive, still reading.
            r = s.request("GET", "/readyz", key=None)
            assert r.status == 503 and r.json()["status"] == "not ready", r
            assert s.request("GET", "/healthz", key=None).status == 200
            assert s.request("GET", "/api/v1/Webhook").status == 200
            # Room again: the next write succeeds and readiness comes back.
            subprocess.run(["mount", "-o", "remount,size=16m", mnt], check=True)
            deadline = time.time() + 20
            while True:
                r = s.request("POST", "/api/v1/Webhook", dict(SO_BODY, Name="after"))
                if r.status == 200 or time.time() > deadline:
                    break
                time.sleep(0.2)
            assert r.status == 200, r
            r = s.request("GET", "/readyz", key=None)
            assert r.status == 200 and r.json()["status"] == "ready", r
    finally:
        subprocess.run(["umount", "-l", mnt])
        shutil.rmtree(mnt, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
