"""Shared harness of the end-to-end tests.

Each test starts the real hookd binary (HOOKD_BIN) on a free loopback port
with a fresh data directory, talks HTTP to it over sockets, and fails when
the server's stderr holds a sanitizer report or the server does not exit 0
on SIGTERM.
"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.path.abspath(os.environ.get("HOOKD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "debug", "hookd"))
ADMIN_KEY = "hk_test_admin_key_0123456789abcdefghijklmnop"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-cased name -> value (last wins)
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:300])


class Server:
    """A hookd process with its own data directory."""

    def __init__(self, env=None, config_text=None, data_dir=None, listen="127.0.0.1:0"):
        self.tmp = tempfile.mkdtemp(prefix="hookd-e2e-")
        self.data = data_dir or os.path.join(self.tmp, "data")
        self.env = dict(os.environ)
        self.env["HOOKD_ADMIN_KEY"] = ADMIN_KEY
        self.env.setdefault("HOOKD_LOG_LEVEL", "debug")
        self.env.update(env or {})
        self.config = None
        if config_text is not None:
            self.config = os.path.join(self.tmp, "hookd.conf")
            with open(self.config, "w") as f:
                f.write(config_text)
        self.listen = listen
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.log_path = os.path.join(self.tmp, "stderr.log")
        self.generation = 0

    # -- process control ---------------------------------------------------
    def args(self, *rest):
        a = [BIN]
        a += list(rest)
        if self.config:
            a += ["--config", self.config]
        a += ["--data", self.data]
        return a

    def start(self, timeout=20):
        self.generation += 1
        self.log_path = os.path.join(self.tmp, "stderr.%d.log" % self.generation)
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args("serve", "--listen", self.listen), env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=logf, stdin=subprocess.DEVNULL,
                                     cwd=self.tmp)
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log()
            m = re.search(r"listening on http://(\[[^\]]+\]|[0-9.]+):(\d+)", text)
            if m and "ready" in text:
                self.host = m.group(1).strip("[]")
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                raise AssertionError("hookd exited with %s at start:\n%s" % (self.proc.returncode, text))
            time.sleep(0.02)
        raise AssertionError("hookd did not become ready:\n" + self.log())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_log(self):
        text = self.log()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise AssertionError("sanitizer report in hookd's stderr:\n" + text[-6000:])

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server; SIGTERM must drain and exit 0 with a clean log."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("hookd did not stop within %ss:\n%s" % (timeout, self.log()[-4000:]))
        self.proc = None
        self.check_log()
        if sig in (signal.SIGTERM, signal.SIGINT) and rc != 0:
            raise AssertionError("hookd exited %d after SIGTERM:\n%s" % (rc, self.log()[-4000:]))
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        if self.proc is not None:
            try:
                self.stop()
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None and self.proc is not None:
            # Show what the server said when a test fails.
            sys.stderr.write("---- hookd stderr (tail) ----\n%s\n" % self.log()[-3000:])
            try:
                self.proc.kill()
                self.proc.wait()
            except Exception:
                pass
            self.proc = None
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        self.cleanup()
        return False

    # -- CLI ---------------------------------------------------------------
    def cli(self, *args, check=True):
        p = subprocess.run(self.args(*args), env=self.env, capture_output=True, text=True, timeout=60,
                           cwd=self.tmp)
        for marker in SANITIZER_MARKERS:
            assert marker not in p.stderr, p.stderr
        if check and p.returncode != 0:
            raise AssertionError("hookd %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
        return p

    # -- HTTP --------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, key=ADMIN_KEY, auth="bearer", timeout=30,
                conn=None):
        """Sends one request on a new connection (or conn) and returns a Response."""
        hdrs = {}
        if key is not None:
            if auth == "bearer":
                hdrs["Authorization"] = "Bearer " + key
            elif auth == "eci":
                hdrs["ECI-ApiKey"] = key
            elif auth == "rest":
                hdrs["Authorization"] = "rest_api_key=" + key
            elif auth.startswith("basic:"):
                hdrs["Authorization"] = "Basic " + base64.b64encode(
                    (auth[6:] + ":" + key).encode()).decode()
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        hdrs.update(headers or {})
        own = conn is None
        if own:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if own:
                conn.close()

    def connection(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def raw(self, data, timeout=5, shut=False):
        """Sends raw bytes on a new socket; returns all bytes read until close or timeout."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()


def parse_responses(raw):
    """Splits raw bytes of pipelined HTTP/1.1 responses into (status, headers, body) tuples."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def run(tests_globals):
    """Runs every test_* function of the module; prints the closing line."""
    names = [n for n in sorted(tests_globals) if n.startswith("test_") and callable(tests_globals[n])]
    only = os.environ.get("HOOKD_TEST_ONLY")
    if only:
        names = [n for n in names if only in n]
    passed = failed = 0
    for name in names:
        t0 = time.time()
        try:
            tests_globals[name]()
            passed += 1
            print("ok   %s (%.2fs)" % (name, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.2fs)" % (name, time.time() - t0), flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
