"""End to end: the HTTP/1.1 server core (keep-alive, pipelining, limits,
timeouts, error shapes, listening, startup errors, drain, full disk)."""
import email.utils
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from hookd_test import ADMIN_KEY, BIN, SANITIZER_MARKERS, Server, lmdb_only, parse_responses, run

GET_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
AUTH = ("Authorization: Bearer %s\r\n" % ADMIN_KEY).encode()
GET_ALL = b"/api/v1/Agents/Webhook/GetAllWebhooks"


class Raw:
    """One client socket with a receive buffer: sends bytes, reads whole responses."""

    def __init__(self, s, timeout=5.0):
        self.sock = socket.create_connection((s.host, s.port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def response(self, is_head=False):
        """Reads one response: (status, headers with lower-case names, body); is_head: it answers a HEAD."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = 0 if is_head or status < 200 or status in (204, 304) else int(headers["content-length"])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self, timeout=5.0):
        """True when the server closes the connection (EOF or reset) within timeout with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return self.buf == b""
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return self.buf == b""
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def request_bytes(method, path, headers=b"", body=b""):
    if isinstance(path, str):
        path = path.encode()
    h = b"%s %s HTTP/1.1\r\nHost: t\r\n" % (method.encode(), path) + headers
    if body:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + b"\r\n" + body


# ---- connection handling ----------------------------------------------------

def test_keep_alive_serves_several_requests_on_one_connection():
    with Server() as s:
        c = Raw(s)
        for _ in range(5):
            c.send(GET_HEALTH)
            st, h, body = c.response()
            assert st == 200 and json.loads(body) == {"status": "ok"}, (st, body)
            assert "close" not in h.get("connection", "").lower(), h
        c.send(request_bytes("GET", "/readyz"))
        st, _, body = c.response()
        assert st == 200 and json.loads(body)["status"] == "ready"
        c.close()


def test_pipelined_requests_are_answered_in_order():
    with Server() as s:
        c = Raw(s)
        c.send(GET_HEALTH + request_bytes("GET", "/nothing/here") + request_bytes("GET", "/readyz"))
        r1, r2, r3 = c.response(), c.response(), c.response()
        assert r1[0] == 200 and json.loads(r1[2]) == {"status": "ok"}, r1
        assert r2[0] == 404 and "error" in json.loads(r2[2]), r2
        assert r3[0] == 200 and json.loads(r3[2])["status"] == "ready", r3
        # The connection is still usable afterwards.
        c.send(GET_HEALTH)
        assert c.response()[0] == 200
        c.close()


def test_many_pipelined_requests_in_one_write():
    with Server() as s:
        c = Raw(s)
        n = 200
        c.send(GET_HEALTH * n)
        for _ in range(n):
            assert c.response()[0] == 200
        c.close()


def test_connection_close_closes_after_the_response():
    with Server() as s:
        c = Raw(s)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        st, h, _ = c.response()
        assert st == 200
        assert h.get("connection", "").lower() == "close", h
        assert c.closed(3), "connection left open after Connection: close"
        # HTTP/1.0 without keep-alive closes too.
        c = Raw(s)
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert c.response()[0] == 200
        assert c.closed(3)


def test_chunked_request_body_is_reassembled():
    with Server() as s:
        c = Raw(s)
        # The body {"NameFilter": 5} in three chunks, with a chunk extension:
        # the handler sees the whole document (and complains about its type).
        body = (b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\n" + AUTH +
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\n{\"Nam\r\n7\r\neFilter\r\n5\r\n\": 5}\r\n0\r\n\r\n")
        c.send(body)
        st, _, b = c.response()
        assert st == 400, (st, b)
        assert "NameFilter" in json.loads(b)["Message"], b
        # A well-formed chunked body, then a pipelined request on the same connection.
        c.send(b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\n" + AUTH +
               b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n" + GET_HEALTH)
        st, _, b = c.response()
        assert st == 200 and json.loads(b) == [], (st, b)
        assert c.response()[0] == 200
        c.close()


def test_expect_100_continue():
    with Server(env={"HOOKD_SERVER_MAX_BODY_BYTES": "1KiB"}) as s:
        c = Raw(s)
        c.send(b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\n" + AUTH +
               b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        st, _, _ = c.response()
        assert st == 100, st
        c.send(b"{}")
        st, _, b = c.response()
        assert st == 200 and json.loads(b) == [], (st, b)

        # Declared too large: 413 at once, no 100, and the body is never awaited.
        c = Raw(s, timeout=3)
        t0 = time.time()
        c.send(b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\n" + AUTH +
               b"Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        st, _, b = c.response()
        assert st == 413, (st, b)
        assert time.time() - t0 < 1.5
        assert "Error" in json.loads(b), b  # /api/v1: SuperOffice shape
        assert c.closed(3)


# ---- malformed and hostile input -------------------------------------------

def test_unknown_expectation_is_417():
    with Server() as s:
        c = Raw(s)
        c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}")
        st, _, b = c.response()
        assert st == 417, (st, b)
        assert c.closed(3)


def test_malformed_request_line_is_400_and_close():
    with Server() as s:
        for bad in (b"HELLO\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /a b c HTTP/1.1\r\n\r\n",
                    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"):
            c = Raw(s)
            c.send(bad)
            st, h, b = c.response()
            assert st == 400, (bad, st, b)
            assert h.get("connection", "").lower() == "close"
            assert "error" in json.loads(b)
            assert c.closed(3), bad
        assert s.request("GET", "/healthz", key=None).status == 200


def test_bad_chunk_size_is_400():
    with Server() as s:
        c = Raw(s)
        c.send(b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\n" + AUTH +
               b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        st, _, b = c.response()
        assert st == 400, (st, b)
        assert "Error" in json.loads(b), b
        assert c.closed(3)


def test_content_length_with_chunked_is_400():
    with Server() as s:
        c = Raw(s)
        c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert c.response()[0] == 400
        assert c.closed(3)


def test_pipelined_garbage_after_a_good_request():
    with Server() as s:
        c = Raw(s)
        c.send(GET_HEALTH + b"THIS IS NOT HTTP\r\n\r\n")
        st, _, b = c.response()
        assert st == 200 and json.loads(b) == {"status": "ok"}
        st, _, _ = c.response()
        assert st == 400
        assert c.closed(3)


def test_oversized_header_block_is_431():
    with Server(env={"HOOKD_SERVER_MAX_HEADER_BYTES": "1KiB"}) as s:
        c = Raw(s)
        c.send(b"GET /api/v3/webhook HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        st, h, b = c.response()
        assert st == 431, (st, b)
        j = json.loads(b)
        assert j["status"] == 431 and "title" in j, j  # /api/v3: EnergyCAP shape
        assert c.closed(3)
        # A long target alone counts as well.
        c = Raw(s)
        c.send(b"GET /" + b"x" * 2000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.response()[0] == 431
        # Just under the limit is fine.
        c = Raw(s)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 800 + b"\r\n\r\n")
        assert c.response()[0] == 200


def test_oversized_head_sent_in_small_pieces_is_431():
    with Server(env={"HOOKD_SERVER_MAX_HEADER_BYTES": "1KiB"}) as s:
        c = Raw(s)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        try:
            for i in range(100):
                c.send(b"X-H%d: %s\r\n" % (i, b"v" * 40))
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        st, _, _ = c.response()
        assert st == 431


def test_too_many_headers_is_431():
    with Server(env={"HOOKD_SERVER_MAX_HEADERS": "10"}) as s:
        c = Raw(s)
        hdrs = b"".join(b"X-N%d: v\r\n" % i for i in range(20))
        c.send(b"GET /api/v1/Webhook HTTP/1.1\r\nHost: t\r\n" + hdrs + b"\r\n")
        st, _, b = c.response()
        assert st == 431, (st, b)
        assert json.loads(b)["ErrorType"], b
        assert c.closed(3)
        c = Raw(s)
        hdrs = b"".join(b"X-N%d: v\r\n" % i for i in range(9))
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + hdrs + b"\r\n")
        assert c.response()[0] == 200


def test_oversized_body_by_content_length_is_413_at_once():
    with Server(env={"HOOKD_SERVER_MAX_BODY_BYTES": "1KiB"}) as s:
        c = Raw(s, timeout=3)
        c.send(b"POST /anything HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n")
        st, h, b = c.response()
        assert st == 413, (st, b)
        assert h.get("connection", "").lower() == "close"
        assert c.closed(3)
        # Exactly the limit is accepted (and reaches routing: 404).
        c = Raw(s)
        c.send(request_bytes("POST", "/anything", body=b"x" * 1024))
        assert c.response()[0] == 404


def test_oversized_chunked_body_is_413():
    with Server(env={"HOOKD_SERVER_MAX_BODY_BYTES": "1KiB"}) as s:
        c = Raw(s)
        c.send(b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\n" + AUTH +
               b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(8):
                c.send(b"200\r\n" + b"x" * 512 + b"\r\n")
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass
        st, _, b = c.response()
        assert st == 413, (st, b)
        assert c.closed(3)


def test_large_chunked_body_over_the_limit_still_gets_its_413():
    # The client is still sending when the server answers: the answer must
    # reach it (no reset from closing with unread input).
    with Server(env={"HOOKD_SERVER_MAX_BODY_BYTES": "1KiB"}) as s:
        for _ in range(5):
            c = Raw(s)
            chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
            data = (b"POST /anything HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 32)
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            st, _, _ = c.response()
            assert st == 413, st
            c.close()


def test_trailer_fields_are_not_headers():
    with Server() as s:
        c = Raw(s)
        c.send(b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"2\r\n{}\r\n0\r\n" + AUTH + b"\r\n")
        st, _, b = c.response()
        assert st == 401, (st, b)  # credentials in a trailer do not count
        c.close()


def test_head_split_across_many_reads():
    with Server() as s:
        c = Raw(s)
        req = (b"POST " + GET_ALL + b"?x=1 HTTP/1.1\r\nHost: t\r\n" + AUTH +
               b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        for i in range(0, len(req), 7):
            c.send(req[i:i + 7])
            time.sleep(0.002)
        st, _, b = c.response()
        assert st == 200 and json.loads(b) == [], (st, b)


def test_upgrade_request_is_answered_and_closed():
    with Server() as s:
        c = Raw(s)
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
               + GET_HEALTH)
        st, h, _ = c.response()
        assert st == 200
        assert h.get("connection", "").lower() == "close"
        assert c.closed(3)


def test_client_that_does_not_read_is_cut_off():
    with Server(env={"HOOKD_SERVER_KEEPALIVE_TIMEOUT": "1s"}) as s:
        c = Raw(s)
        c.sock.settimeout(0.2)
        # Each request is small, each answer large (the 404 echoes the path).
        req = b"GET /" + b"p" * 8000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        sent = 0
        stuck = False
        t0 = time.time()
        try:
            while time.time() - t0 < 5:
                c.sock.sendall(req)
                sent += 1
        except socket.timeout:
            stuck = True
        except (BrokenPipeError, ConnectionResetError):
            stuck = True
        # The server stops reading while an answer is stuck, so the client
        # cannot push without end (only the kernel buffers fill).
        assert stuck, "the server kept reading from a client that does not read (%d requests)" % sent
        # Others are served meanwhile.
        assert s.request("GET", "/healthz", key=None).status == 200
        # Not reading for longer than the keep-alive time: by then the server
        # has closed it, so what is left is what was already on its way,
        # followed at once by the end of the connection.
        time.sleep(2.5)
        c.sock.settimeout(1)
        deadline = time.time() + 1.5
        closed = False
        got = 0
        try:
            while time.time() < deadline and not closed:
                d = c.sock.recv(65536)
                got += len(d)
                closed = d == b""
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        except socket.timeout:
            pass
        assert closed, "a client that stopped reading was not cut off (%d requests, %d bytes read)" % (sent, got)
        assert s.request("GET", "/healthz", key=None).status == 200


def test_client_gone_while_its_request_is_handled():
    with Server() as s:
        for _ in range(20):
            c = Raw(s)
            c.send(b"POST /api/v1/Webhook HTTP/1.1\r\nHost: t\r\n" + AUTH +
                   b"Content-Type: application/json\r\nContent-Length: 77\r\n\r\n"
                   b'{"Name":"gone","Events":["a.b"],"TargetUrl":"https://example.com/x","State":1}')
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
        assert s.request("GET", "/healthz", key=None).status == 200


def test_slow_client_gets_408_and_others_are_served_meanwhile():
    with Server(env={"HOOKD_SERVER_HEADER_TIMEOUT": "1s"}) as s:
        slow = Raw(s, timeout=5)
        got = {}

        def dribble():
            t0 = time.time()
            try:
                for ch in GET_HEALTH:
                    slow.send(bytes([ch]))
                    time.sleep(0.25)
            except OSError:
                pass
            got["sent_for"] = time.time() - t0

        t0 = time.time()
        th = threading.Thread(target=dribble)
        th.start()
        # Other clients are served while the slow one dribbles.
        for _ in range(5):
            t1 = time.time()
            assert s.request("GET", "/healthz", key=None).status == 200
            assert time.time() - t1 < 0.5
            time.sleep(0.1)
        st, h, b = slow.response()
        elapsed = time.time() - t0
        assert st == 408, (st, b)
        assert 0.8 <= elapsed < 3.0, elapsed
        assert h.get("connection", "").lower() == "close"
        th.join()
        slow.close()


def test_body_timeout_is_408():
    with Server(env={"HOOKD_SERVER_BODY_TIMEOUT": "1s"}) as s:
        c = Raw(s)
        t0 = time.time()
        c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        st, _, b = c.response()
        assert st == 408, (st, b)
        assert 0.8 <= time.time() - t0 < 3.0


def test_idle_keep_alive_connection_is_closed():
    with Server(env={"HOOKD_SERVER_KEEPALIVE_TIMEOUT": "1s"}) as s:
        c = Raw(s)
        c.send(GET_HEALTH)
        assert c.response()[0] == 200
        t0 = time.time()
        assert c.closed(5)
        assert 0.8 <= time.time() - t0 < 3.0, time.time() - t0
        # A connection that never sends anything is closed after the header timeout.


def test_silent_new_connection_is_closed_after_header_timeout():
    with Server(env={"HOOKD_SERVER_HEADER_TIMEOUT": "1s"}) as s:
        c = Raw(s)
        t0 = time.time()
        assert c.closed(5)
        assert 0.8 <= time.time() - t0 < 3.0


def test_timeouts_of_different_lengths_each_end_on_time():
    """The connection's timer runs at most the shortest timeout ahead and is started again for the rest:
    an idle keep-alive connection still lasts its own, longer timeout, and a head that starts on it
    gets its 408 one header timeout after it started, not when the keep-alive time would end."""
    with Server(env={"HOOKD_SERVER_HEADER_TIMEOUT": "1s", "HOOKD_SERVER_KEEPALIVE_TIMEOUT": "3s"}) as s:
        c = Raw(s)
        c.send(GET_HEALTH)
        assert c.response()[0] == 200
        time.sleep(2.0)  # past one header timeout, within the keep-alive one
        c.send(GET_HEALTH)
        assert c.response()[0] == 200
        t0 = time.time()
        assert c.closed(6)
        assert 2.6 <= time.time() - t0 < 5.0, time.time() - t0

        c = Raw(s)
        c.send(GET_HEALTH)
        assert c.response()[0] == 200
        time.sleep(0.5)
        t0 = time.time()
        c.send(b"GET /healthz HTTP/1.1\r\n")
        st, _, b = c.response()
        assert st == 408, (st, b)
        assert 0.8 <= time.time() - t0 < 2.0, time.time() - t0


def test_max_connections():
    with Server(env={"HOOKD_SERVER_MAX_CONNECTIONS": "4"}) as s:
        conns = []
        for _ in range(4):
            c = Raw(s)
            c.send(GET_HEALTH)
            assert c.response()[0] == 200
            conns.append(c)
        fifth = Raw(s)
        assert fifth.closed(3), "the 5th connection was not closed"
        for c in conns:
            c.send(GET_HEALTH)
            assert c.response()[0] == 200
        assert "connection limit (4)" in s.log()
        # Closing one makes room for a new one.
        conns.pop().close()
        deadline = time.time() + 3
        while True:
            c = Raw(s)
            try:
                c.send(GET_HEALTH)
                assert c.response()[0] == 200
                break
            except (EOFError, ConnectionResetError, BrokenPipeError):
                assert time.time() < deadline, "no room after a connection closed"
                time.sleep(0.05)
        for c in conns:
            c.close()


# ---- responses ---------------------------------------------------------------

def test_404_and_405_in_each_dialect():
    with Server() as s:
        r = s.request("GET", "/api/v1/NoSuchThing", key=None)
        assert r.status == 404, r
        j = r.json()
        assert set(j) == {"Error", "ErrorType", "Message"} and j["ErrorType"] == "NotFound", j
        r = s.request("GET", "/api/v3/nosuchthing", key=None)
        assert r.status == 404, r
        j = r.json()
        assert j["status"] == 404 and j["title"] == "Not Found" and j["message"], j
        r = s.request("GET", "/api/rest/NoSuchThing", key=None)
        assert r.status == 404, r
        j = r.json()
        assert j["ErrorCode"] == "UnhandledSystemException-" and j["Message"].startswith(
            "Unhandled system exception: "), j
        r = s.request("GET", "/nothing", key=None)
        assert r.status == 404 and set(r.json()) == {"error"}, r

        r = s.request("POST", "/healthz", key=None, body="{}")
        assert r.status == 405, r
        assert r.header("allow") == "GET, HEAD", r.headers
        assert set(r.json()) == {"error"}
        r = s.request("DELETE", "/api/v1/Webhook", key=None)
        assert r.status == 405, r
        assert "GET" in r.header("allow") and "POST" in r.header("allow"), r.headers
        assert r.json()["ErrorType"] == "MethodNotAllowed", r
        r = s.request("PATCH", "/api/v3/webhook", key=None, body="{}")
        assert r.status == 405, r
        assert "GET" in r.header("allow"), r.headers
        assert r.json()["status"] == 405, r


def test_response_headers():
    with Server() as s:
        for path, status in (("/healthz", 200), ("/nothing", 404)):
            r = s.request("GET", path, key=None)
            assert r.status == status
            assert r.header("content-type") == "application/json; charset=utf-8", r.headers
            assert int(r.header("content-length")) == len(r.body)
            d = email.utils.parsedate_to_datetime(r.header("date"))
            assert abs(d.timestamp() - time.time()) < 5, r.header("date")
            assert r.header("date").endswith(" GMT")
        get = s.request("GET", "/healthz", key=None)
        c = Raw(s)
        c.send(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + GET_HEALTH)
        st, h, _ = c.response(is_head=True)
        assert st == 200 and int(h["content-length"]) == len(get.body)
        # No body after HEAD: the next bytes are the pipelined GET's response.
        st, _, b = c.response()
        assert st == 200 and b == get.body


# ---- listening and configuration ----------------------------------------------

def ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        t.bind(("::1", 0))
        t.close()
        return True
    except OSError:
        return False


def test_ipv6_listen():
    if not ipv6_loopback():
        print("SKIP test_ipv6_listen: this machine has no IPv6 loopback (::1 cannot be bound)")
        return
    with Server(listen="[::1]:0") as s:
        assert s.host == "::1"
        r = s.request("GET", "/healthz", key=None)
        assert r.status == 200, r
        c = Raw(s)
        c.send(GET_HEALTH * 2)
        assert c.response()[0] == 200 and c.response()[0] == 200


class EnvListenServer(Server):
    """Starts without --listen, so the address comes from the config file or the environment."""

    def args(self, *rest):
        rest = list(rest)
        if "--listen" in rest:
            i = rest.index("--listen")
            del rest[i:i + 2]
        return super().args(*rest)


def test_listen_from_environment_wins_over_the_file():
    conf = "[server]\nlisten = 127.0.0.1:1\n"
    with EnvListenServer(config_text=conf, env={"HOOKD_SERVER_LISTEN": "127.0.0.1:0"}) as s:
        assert s.port not in (1, 8080)
        assert s.request("GET", "/healthz", key=None).status == 200


def start_fails(conf=None, env=None, listen="127.0.0.1:0"):
    tmp = tempfile.mkdtemp(prefix="hookd-e2e-")
    try:
        args = [BIN, "serve", "--data", os.path.join(tmp, "data"), "--listen", listen]
        if conf is not None:
            path = os.path.join(tmp, "hookd.conf")
            with open(path, "w") as f:
                f.write(conf)
            args += ["--config", path]
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run(args, env=e, capture_output=True, text=True, timeout=20, cwd=tmp)
        for m in SANITIZER_MARKERS:
            assert m not in p.stderr, p.stderr
        return p
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_startup_rejects_unknown_keys_and_bad_values():
    p = start_fails("[server]\nmax_conections = 10\n")
    assert p.returncode != 0 and "server.max_conections" in p.stderr and "unknown" in p.stderr, p.stderr
    p = start_fails("[server]\nmax_connections = lots\n")
    assert p.returncode != 0 and "server.max_connections" in p.stderr, p.stderr
    p = start_fails("[server]\nheader_timeout = 10 parsecs\n")
    assert p.returncode != 0 and "server.header_timeout" in p.stderr, p.stderr
    p = start_fails("[nosuchsection]\nkey = 1\n")
    assert p.returncode != 0 and "nosuchsection.key" in p.stderr, p.stderr
    p = start_fails(env={"HOOKD_SERVER_MAX_BODY_BYTES": "huge"})
    assert p.returncode != 0 and "HOOKD_SERVER_MAX_BODY_BYTES" in p.stderr, p.stderr
    p = start_fails(env={"HOOKD_SERVER_MAX_CONECTIONS": "5"})
    assert p.returncode != 0 and "HOOKD_SERVER_MAX_CONECTIONS" in p.stderr, p.stderr
    p = start_fails(env={"HOOKD_LOG_LEVEL": "chatty"})
    assert p.returncode != 0 and "log.level" in p.stderr, p.stderr
    p = start_fails(listen="localhost:http")
    assert p.returncode != 0 and "localhost:http" in p.stderr, p.stderr


# ---- drain ---------------------------------------------------------------------

def test_sigterm_answers_the_request_in_flight_and_exits_zero():
    with Server() as s:
        c = Raw(s)
        # The head is in, the body not yet: the request is in flight.
        c.send(b"POST " + GET_ALL + b" HTTP/1.1\r\nHost: t\r\n" + AUTH + b"Content-Length: 2\r\n\r\n")
        idle = Raw(s)
        idle.send(GET_HEALTH)
        assert idle.response()[0] == 200
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)
        # Idle connections are closed and no new one is accepted.
        assert idle.closed(3)
        deadline = time.time() + 3
        while True:
            try:
                socket.create_connection((s.host, s.port), timeout=1).close()
            except OSError:
                break
            assert time.time() < deadline, "still accepting after SIGTERM"
            time.sleep(0.05)
        c.send(b"{}")
        st, h, b = c.response()
        assert st == 200 and json.loads(b) == [], (st, b)
        assert h.get("connection", "").lower() == "close"
        rc = s.proc.wait(20)
        assert rc == 0, s.log()
        s.proc = None
        s.check_log()


# ---- full disk ---------------------------------------------------------------

def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


@lmdb_only("a full disk under the LMDB file (tmpfs); the PostgreSQL outage is test_cluster.py's")
def test_full_disk_gives_503_and_loses_nothing_acknowledged():
    mnt = tempfile.mkdtemp(prefix="hookd-tmpfs-")
    ok, why = mount_tmpfs(mnt, "2m")
    if not ok:
        os.rmdir(mnt)
        print("SKIP test_full_disk: cannot mount a small tmpfs here (%s)" % (why or "mount failed"))
        return
    try:
        data = os.path.join(mnt, "data")
        with Server(data_dir=data, env={"HOOKD_STORE_MAP_SIZE": "1MiB"}) as s:
            acked, refused = [], 0
            filler = "x" * 6000
            conn = s.connection()
            for i in range(1000):
                body = {"Name": "w%d" % i, "Events": ["contact.created"], "TargetUrl": "https://example.com/h",
                        "Properties": {"pad": filler}}
                r = s.request("POST", "/api/v1/Webhook", body=body, conn=conn)
                if r.status == 200:
                    acked.append(r.json()["WebhookId"])
                    continue
                assert r.status == 503, r
                assert "Error" in r.json()
                refused += 1
                if refused >= 3:
                    break
            assert refused >= 3 and len(acked) > 10, (len(acked), refused)
            assert "map grown" in s.log(), "the 1 MiB map never had to grow"
            # Still serving reads while the disk is full.
            assert s.request("GET", "/healthz", key=None).status == 200
            ids = sorted(w["WebhookId"] for w in s.request("GET", "/api/v1/Webhook").json())
            assert ids == sorted(acked), (ids, acked)
            conn.close()
            s.stop()
            # Everything acknowledged survives a restart.
            s.start()
            ids = sorted(w["WebhookId"] for w in s.request("GET", "/api/v1/Webhook").json())
            assert ids == sorted(acked), (ids, acked)
            # With room again, writes succeed again.
            subprocess.run(["mount", "-o", "remount,size=16m", mnt], check=True)
            r = s.request("POST", "/api/v1/Webhook", body={"Name": "after", "Events": ["contact.created"],
                                                           "TargetUrl": "https://example.com/h"})
            assert r.status == 200, r
    finally:
        subprocess.run(["umount", "-l", mnt])
        shutil.rmtree(mnt, ignore_errors=True)


def test_half_closed_client_gets_every_pipelined_answer():
    """Requests sent before the client's FIN are all answered, in order, the
    first of them waiting for a commit while the others are held."""
    body = b'{"Name":"hc","Events":["a.b"],"TargetUrl":"https://example.com/x","State":"Active"}'
    post = (b"POST /api/v1/Webhook HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + ADMIN_KEY.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    get = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with Server() as s:
        for data, expected in ((post + get, [200, 200]), (post + get + get, [200, 200, 200]), (get + get, [200, 200])):
            answers = parse_responses(s.raw(data, shut=True, timeout=5))
            assert [a[0] for a in answers] == expected, (data[:20], answers)


if __name__ == "__main__":
    run(globals())
