"""A local webhook receiver for tests: records every request, answers as told.

Standard library only (plus the openssl command for TestCA). Import it from
other tests::

    from receiver import Receiver, Reply, TestCA
    from receiver import RawReceiver, header_of   # the exact bytes of each request

    with Receiver() as rx:                      # http://127.0.0.1:PORT
        rx.reply(status=200, body=b"ok")        # the default answer
        rx.queue(Reply(status=503, headers={"Retry-After": "1"}), Reply(status=200))
        ... make hookd deliver to rx.url + "/hook" ...
        reqs = rx.wait_for(2, timeout=10)       # list of ReceivedRequest
        assert reqs[0].header("x-superoffice-event") == "contact.created"
        assert reqs[0].json()["Event"] == "contact.created"

    ca = TestCA()                               # a CA plus certificates made with openssl
    with Receiver(tls=True, ca=ca) as rx:       # https://127.0.0.1:PORT, cert for 127.0.0.1, localhost, ::1
        ... configure hookd with ca.ca_file ...
    ca.cleanup()

Receiver(tls=False, ca=None, ipv6=False, cert=None, key=None, client_ca=None,
handler=None) listens on 127.0.0.1 port 0 (and, with ipv6=True, on ::1 too:
rx.url6) using http.server.ThreadingHTTPServer with HTTP/1.1 keep-alive, in
background threads. What to answer, first match wins:

1. the next Reply of the queue (rx.queue(...)), one per request;
2. rx.handler(request), when set, if it returns a Reply (None falls through);
3. the default Reply (rx.reply(...)), initially 200 with an empty body.

A Reply has status, headers (dict or list of pairs), body (bytes or str),
delay (seconds to sleep before answering), chunked (Transfer-Encoding:
chunked), close (Connection: close), close_delimited (no length, the body
ends with the connection), drop (close the connection without answering)
drop_next (answer, then drop the next request on the same connection,
to imitate a keep-alive connection the server closed) and raw (bytes sent
as they are instead of a response, then the connection closes).

Every request is recorded, in arrival order, as a ReceivedRequest with
method, path (with query), headers (list of (name, value) pairs in the order
received; .header(name) finds one case-insensitively), body (raw bytes),
time (time.time() at arrival), conn_id (the same for requests that shared a
connection) and tls. rx.requests returns a copy of the list, rx.wait_for(n,
timeout) waits until at least n arrived and returns them (AssertionError on
timeout), rx.clear() forgets them, rx.close() stops everything.

Receiver.routes is a ready-made handler that picks the answer from the path
(used by `--serve --routes` and by the C client test): /echo, /inspect,
/status/N, /delay/MS, /chunked, /big/N, /big-chunked/N, /close,
/close-delimited, /drop-next, /header-bytes/N (a header of N bytes),
/garbage (not HTTP), /continue (100 Continue before the answer); anything
else gets 200 "ok".

RawReceiver(response=...) is for tests that need the exact bytes hookd put
on the wire (a signature over the header order, the log detail of an
attempt compared byte for byte): a plain socket server on 127.0.0.1 port 0
that reads each request up to the end of its Content-Length body, records
head and body as one bytes object (rx.raw, in arrival order), and answers
every request with the same raw response bytes (by default
"HTTP/1.1 200 OK", Content-Length 2, "ok") on a keep-alive connection.
rx.url, rx.wait_for(n, timeout) (returns the list of bytes; AssertionError
on timeout) and rx.close() as for Receiver; it is a context manager too.
It reads no chunked bodies (hookd sends none). path_of(raw), header_of(raw,
name) (case-insensitive, None when absent) and body_of(raw) pick a recorded
request apart.

TestCA(directory=None) makes, with the openssl command, a CA (ca_file), a
server certificate for localhost, 127.0.0.1 and ::1 (server_cert,
server_key), a client certificate for mutual TLS (client_cert, client_key)
and a self-signed certificate for wrong.example that no CA signed
(wrong_cert, wrong_key) for negative tests. ca.issue(name, sans) makes more.

Run as a program it serves until stdin closes or SIGTERM:

    python3 receiver.py --serve [--tls] [--ipv6] [--routes] [--status N] [--body TEXT] [--delay S]
        prints "READY port=P url=URL [port6=P] [ca=PATH]"
    python3 receiver.py --suite
        starts plain (also on ::1 when available), TLS, TLS with the wrong
        certificate and mutual-TLS receivers, all with Receiver.routes, and
        prints "READY http=P http6=P https=P https6=P wrong=P mtls=P ca=PATH
        wrong_ca=PATH client_cert=PATH client_key=PATH server_cert=PATH"
        (http6=0 and https6=0 without IPv6)
"""
import argparse
import collections
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

__all__ = ["Receiver", "Reply", "ReceivedRequest", "TestCA", "RawReceiver", "path_of", "header_of", "body_of"]

MAX_BODY = 64 * 1024 * 1024


class Reply:
    """One answer of the receiver; see the module docstring."""

    def __init__(self, status=200, headers=None, body=b"", delay=0.0, chunked=False, close=False,
                 close_delimited=False, drop=False, drop_next=False, raw=None):
        self.status = int(status)
        if headers is None:
            headers = []
        elif isinstance(headers, dict):
            headers = list(headers.items())
        self.headers = list(headers)
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.delay = float(delay)
        self.chunked = chunked
        self.close = close
        self.close_delimited = close_delimited
        self.drop = drop
        self.drop_next = drop_next
        self.raw = raw.encode("utf-8") if isinstance(raw, str) else raw

    def __repr__(self):
        return "<Reply %d %r>" % (self.status, self.body[:60])


class ReceivedRequest:
    """One request as the receiver got it."""

    def __init__(self, method, path, headers, body, arrived, conn_id, tls):
        self.method = method
        self.path = path
        self.headers = headers  # [(name, value), ...] in the order received
        self.body = body
        self.time = arrived
        self.conn_id = conn_id
        self.tls = tls

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<ReceivedRequest %s %s %d bytes conn %d>" % (self.method, self.path, len(self.body), self.conn_id)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "receiver/1.0"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection ends after this

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        rx = self.server.receiver
        with rx._lock:
            rx._next_conn += 1
            self.conn_id = rx._next_conn
            rx._sockets.add(self.connection)
        self.drop_next = False

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.server.receiver._lock:
            self.server.receiver._sockets.discard(self.connection)

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._serve()
            self.wfile.flush()
        except (OSError, ssl.SSLError, ValueError):
            self.close_connection = True

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(3)
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _serve(self):
        rx = self.server.receiver
        if self.drop_next:
            self.close_connection = True
            return
        arrived = time.time()
        body = self._read_body()
        req = ReceivedRequest(self.command, self.path, list(self.headers.items()), body, arrived, self.conn_id,
                              self.server.tls)
        reply = rx._reply_for(req)
        if reply.drop:
            self.close_connection = True
            return
        rx._record(req)
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.raw is not None:
            self.wfile.write(reply.raw)
            self.close_connection = True
            return
        self.send_response_only(reply.status)
        names = set()
        for k, v in reply.headers:
            self.send_header(k, str(v))
            names.add(k.lower())
        if reply.status in (204, 304) or reply.status < 200:
            pass
        elif reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not reply.close_delimited and "content-length" not in names:
            self.send_header("Content-Length", str(len(reply.body)))
        if reply.close or reply.close_delimited:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD" or reply.status in (204, 304) or reply.status < 200:
            return
        if reply.chunked:
            step = max(1, len(reply.body) // 3 + 1)
            for i in range(0, len(reply.body), step):
                piece = reply.body[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(reply.body)
        self.drop_next = reply.drop_next


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, receiver, ssl_ctx, family):
        self.address_family = family
        self.receiver = receiver
        self.ssl_ctx = ssl_ctx
        self.tls = ssl_ctx is not None
        super().__init__(addr, _Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socket.socket.bind(self.socket, self.server_address)  # skip HTTPServer's getfqdn()
        self.server_address = self.socket.getsockname()
        self.server_name = "localhost"
        self.server_port = self.server_address[1]

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # client that stalls it does not hold up accept().
        if self.ssl_ctx is not None:
            try:
                request.settimeout(30)
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.receiver._note_tls_error(e)
                try:
                    request.close()
                except OSError:
                    pass
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.ssl_ctx is not None:
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        pass


def ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Receiver:
    """A recording HTTP(S) server on loopback; see the module docstring."""

    def __init__(self, tls=False, ca=None, ipv6=False, cert=None, key=None, client_ca=None, handler=None,
                 host="127.0.0.1"):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests = []
        self._queue = collections.deque()
        self._default = Reply()
        self._next_conn = 0
        self._sockets = set()
        self.tls_errors = []
        self.handler = handler
        self.tls = tls
        self._own_ca = None
        ssl_ctx = None
        if tls:
            if ca is None and cert is None:
                ca = self._own_ca = TestCA()
            self.ca = ca
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(cert or ca.server_cert, key or ca.server_key)
            if client_ca is not None:
                ssl_ctx.verify_mode = ssl.CERT_REQUIRED
                ssl_ctx.load_verify_locations(client_ca)
        else:
            self.ca = ca
        self._servers = [_Server((host, 0), self, ssl_ctx, socket.AF_INET)]
        if ipv6:
            self._servers.append(_Server(("::1", 0), self, ssl_ctx, socket.AF_INET6))
        self._threads = []
        for s in self._servers:
            t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            t.start()
            self._threads.append(t)
        self.host = host
        self.closed = False

    # -- addresses ------------------------------------------------------------
    @property
    def port(self):
        return self._servers[0].server_port

    @property
    def port6(self):
        return self._servers[1].server_port if len(self._servers) > 1 else None

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    @property
    def url6(self):
        if self.port6 is None:
            return None
        return "%s://[::1]:%d" % ("https" if self.tls else "http", self.port6)

    # -- answers --------------------------------------------------------------
    def reply(self, status=200, body=b"", headers=None, delay=0.0, **kw):
        """Sets the default answer (keyword arguments as Reply)."""
        r = Reply(status=status, body=body, headers=headers, delay=delay, **kw)
        with self._lock:
            self._default = r
        return r

    def queue(self, *replies):
        """Queues one-shot answers, used in order before the default one."""
        with self._lock:
            self._queue.extend(replies)

    def _reply_for(self, req):
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            handler = self.handler
            default = self._default
        if handler is not None:
            r = handler(req)
            if r is not None:
                return r
        return default

    # -- records --------------------------------------------------------------
    def _record(self, req):
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    def _note_tls_error(self, e):
        with self._lock:
            self.tls_errors.append(str(e))

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def clear(self):
        with self._lock:
            self._requests = []

    def wait_for(self, n, timeout=10.0):
        """Waits until at least n requests arrived; returns them all."""
        deadline = time.time() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("receiver got %d of %d requests within %ss: %r" %
                                         (len(self._requests), n, timeout, self._requests))
                self._cond.wait(left)
            return list(self._requests)

    # -- life -----------------------------------------------------------------
    def close(self):
        if self.closed:
            return
        self.closed = True
        for s in self._servers:
            s.shutdown()
            s.server_close()
        with self._lock:
            socks = list(self._sockets)
        for s in socks:  # end keep-alive connections too
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._own_ca is not None:
            self._own_ca.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- a handler for tests that steer by path -------------------------------
    @staticmethod
    def routes(req):
        parts = req.path.split("?")[0].strip("/").split("/")
        head = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if head == "echo":
            ct = req.header("Content-Type", "application/octet-stream")
            return Reply(200, {"Content-Type": ct}, req.body)
        if head == "inspect":
            doc = {"method": req.method, "path": req.path, "headers": req.headers, "body_len": len(req.body),
                   "conn_id": req.conn_id}
            return Reply(200, {"Content-Type": "application/json"}, json.dumps(doc))
        if head == "status" and arg.isdigit():
            headers = {"Content-Type": "text/plain"}
            if 300 <= int(arg) < 400:
                headers["Location"] = "/echo"
            return Reply(int(arg), headers, "status %s" % arg)
        if head == "delay" and arg.isdigit():
            return Reply(200, {"Content-Type": "text/plain"}, "late", delay=int(arg) / 1000.0)
        if head == "chunked":
            return Reply(200, {"Content-Type": "text/plain"}, "chunk-one,chunk-two,chunk-three", chunked=True)
        if head in ("big", "big-chunked") and arg.isdigit():
            return Reply(200, {"Content-Type": "text/plain"}, b"x" * int(arg), chunked=head == "big-chunked")
        if head == "close":
            return Reply(200, {"Content-Type": "text/plain"}, "closing", close=True)
        if head == "close-delimited":
            return Reply(200, {"Content-Type": "text/plain"}, "until the end", close_delimited=True)
        if head == "header-bytes" and arg.isdigit():
            return Reply(200, {"X-Big": "h" * int(arg)}, "big head")
        if head == "garbage":
            return Reply(raw=b"HTTP/1.1 abc nonsense\r\n\r\n")
        if head == "continue":
            return Reply(raw=b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 5\r\n"
                             b"Connection: close\r\n\r\nafter")
        if head == "drop-next":
            return Reply(200, {"Content-Type": "text/plain"}, "ok", drop_next=True)
        return Reply(200, {"Content-Type": "text/plain"}, "ok")


class RawReceiver:
    """Records each request's exact bytes and answers with fixed raw bytes (keep-alive); see the module docstring."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, response=OK):
        self.response = response  # the bytes written after every request
        self.raw = []  # head + body of each request, in arrival order; guarded by cond
        self.cond = threading.Condition()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = self.rfile.readline(65537)
                        if not line:
                            return
                        head += line
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v.strip())
                    body = self.rfile.read(length)
                    with outer.cond:
                        outer.raw.append(head + body)
                        outer.cond.notify_all()
                    self.wfile.write(outer.response)
                    self.wfile.flush()

        class Srv(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Srv(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def wait_for(self, n, timeout=20):
        """Waits until at least n requests arrived; returns the bytes of them all."""
        deadline = time.time() + timeout
        with self.cond:
            while len(self.raw) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("raw receiver got %d of %d requests" % (len(self.raw), n))
                self.cond.wait(left)
            return list(self.raw)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def path_of(raw):
    """The request target (path and query) of a request RawReceiver recorded."""
    return raw.split(b" ", 2)[1].decode()


def header_of(raw, name):
    """The value of header name (case-insensitive) of a recorded request, or None."""
    for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower().encode():
            return v.strip().decode()
    return None


def body_of(raw):
    """The body of a recorded request."""
    return raw.split(b"\r\n\r\n", 1)[1]


class TestCA:
    """A throwaway CA and certificates, made with the openssl command."""

    __test__ = False  # not a test class

    def __init__(self, directory=None):
        self.dir = directory or tempfile.mkdtemp(prefix="hookd-ca-")
        self._own_dir = directory is None
        os.makedirs(self.dir, exist_ok=True)
        self.ca_file = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self._openssl("req", "-x509", *self._newkey(self.ca_key), "-out", self.ca_file, "-days", "30",
                      "-subj", "/CN=hookd test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.server_cert, self.server_key = self.issue(
            "server", ["DNS:localhost", "IP:127.0.0.1", "IP:0:0:0:0:0:0:0:1"], cn="localhost")
        self.client_cert, self.client_key = self.issue("client", [], cn="hookd test client", client=True)
        self.wrong_cert = os.path.join(self.dir, "wrong.pem")
        self.wrong_key = os.path.join(self.dir, "wrong.key")
        self._openssl("req", "-x509", *self._newkey(self.wrong_key), "-out", self.wrong_cert, "-days", "30",
                      "-subj", "/CN=wrong.example",
                      "-addext", "subjectAltName=DNS:wrong.example",
                      "-addext", "basicConstraints=critical,CA:TRUE")

    @staticmethod
    def _newkey(path):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path]

    def _openssl(self, *args):
        p = subprocess.run(["openssl"] + list(args), cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (args[0], p.stderr.decode("utf-8", "replace")))

    def issue(self, name, sans, cn=None, client=False):
        """Issues a certificate signed by the CA; sans like ["DNS:x", "IP:1.2.3.4"]. Returns (cert, key)."""
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature\n")
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
            if sans:
                f.write("subjectAltName=%s\n" % ",".join(sans))
        self._openssl("req", "-new", *self._newkey(key), "-out", csr, "-subj", "/CN=%s" % (cn or name))
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", self.ca_key, "-CAcreateserial",
                      "-out", cert, "-days", "30", "-extfile", ext)
        return cert, key

    def cleanup(self):
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


_stop = threading.Event()


def _wait_for_exit():
    """Blocks until stdin closes (the parent died or is done) or SIGTERM/SIGINT."""
    done = _stop

    def stdin_watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        done.set()

    threading.Thread(target=stdin_watch, daemon=True).start()
    while not done.wait(0.2):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="Recording HTTP(S) receiver for tests.")
    ap.add_argument("--serve", action="store_true", help="serve one receiver and print its port")
    ap.add_argument("--suite", action="store_true", help="serve the receivers the C client test uses")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--ipv6", action="store_true")
    ap.add_argument("--routes", action="store_true", help="answer by path (Receiver.routes)")
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--body", default="")
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args(argv)
    if not args.serve and not args.suite:
        ap.error("nothing to do: give --serve or --suite")
    # Before anything is created, so that a stop at any moment still cleans up.
    signal.signal(signal.SIGTERM, lambda *a: _stop.set())
    signal.signal(signal.SIGINT, lambda *a: _stop.set())
    receivers = []
    ca = None
    try:
        if args.suite:
            ca = TestCA()
            v6 = ipv6_available()
            plain = Receiver(ipv6=v6, handler=Receiver.routes)
            receivers.append(plain)
            tls = Receiver(tls=True, ca=ca, ipv6=v6, handler=Receiver.routes)
            receivers.append(tls)
            wrong = Receiver(tls=True, ca=ca, cert=ca.wrong_cert, key=ca.wrong_key, handler=Receiver.routes)
            receivers.append(wrong)
            mtls = Receiver(tls=True, ca=ca, client_ca=ca.ca_file, handler=Receiver.routes)
            receivers.append(mtls)
            print("READY http=%d http6=%d https=%d https6=%d wrong=%d mtls=%d ca=%s wrong_ca=%s client_cert=%s "
                  "client_key=%s server_cert=%s" % (plain.port, plain.port6 or 0, tls.port, tls.port6 or 0, wrong.port,
                                                    mtls.port, ca.ca_file, ca.wrong_cert, ca.client_cert,
                                                    ca.client_key, ca.server_cert), flush=True)
        else:
            if args.tls:
                ca = TestCA()
            rx = Receiver(tls=args.tls, ca=ca, ipv6=args.ipv6 and ipv6_available(),
                          handler=Receiver.routes if args.routes else None)
            rx.reply(status=args.status, body=args.body, delay=args.delay)
            receivers.append(rx)
            line = "READY port=%d url=%s" % (rx.port, rx.url)
            if rx.port6:
                line += " port6=%d" % rx.port6
            if ca is not None:
                line += " ca=%s" % ca.ca_file
            print(line, flush=True)
        _wait_for_exit()
    finally:
        for rx in receivers:
            rx.close()
        if ca is not None:
            ca.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
