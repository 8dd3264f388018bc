"""bench/benchlib.py: the parts bench/run is made of (see bench/README.md).

The processes it starts (every one stopped at exit, however the script
ends), their CPU time from /proc, hookd, the receiver and nginx (the
`return 204` ceiling and the `proxy_pass` relay) as objects, and the
machine's description for the table's header.
"""
import ctypes
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_KEY = "hk_bench_admin_key_0123456789abcdefghijklmnop"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENT = "bench.event"
SIGNAL_PATH = "/api/v1/Agents/Webhook/SignalEvent"
CLK_TCK = os.sysconf("SC_CLK_TCK")

class BenchError(Exception):
    """A scenario could not produce its figure; the message says why."""


# ---- processes ----------------------------------------------------------------

def _die_with_parent():
    """In the child before exec: SIGKILL when bench/run itself dies, even by SIGKILL (a
    stopped receiver would not act on anything gentler)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Procs:
    """Every process this script starts, so that all of them are stopped at exit."""

    def __init__(self):
        self.procs = []

    def start(self, args, log_path, env=None, cwd=None, stdout=None):
        logf = open(log_path, "ab")
        p = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else logf, stderr=logf,
                             start_new_session=True, preexec_fn=_die_with_parent)
        logf.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=15):
        """Stops p (SIGCONT first, in case it was stopped); SIGKILL after timeout."""
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p, timeout=5)


PROCS = Procs()


def on_fatal_signal(signum, frame):
    raise SystemExit("bench/run: stopped by signal %d" % signum)


def cpu_seconds(pid):
    """User plus system CPU time of pid so far, in seconds (None when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu(pid):
    """CPU seconds of pid and of its children (nginx's workers under its master), None when pid is gone."""
    total = cpu_seconds(pid)
    if total is None:
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == pid:
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_by_mapping(pid):
    """hookd's resident memory in MiB by what is mapped: LMDB's data file (pages of the page cache
    that hookd has touched through its read-only map), the write-ahead log, anonymous memory (heap,
    thread stacks) and the rest (the binary and its libraries)."""
    out = {"data.mdb": 0, "log": 0, "anonymous": 0, "other": 0}
    cur = None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split()
                    path = parts[5] if len(parts) > 5 else ""
                    if path.endswith("/data.mdb"):
                        cur = "data.mdb"
                    elif path.endswith(".log"):
                        cur = "log"
                    elif path == "" or path.startswith("["):
                        cur = "anonymous"
                    else:
                        cur = "other"
                elif first == "Rss:" and cur is not None:
                    out[cur] += int(line.split()[1])
    except OSError:
        return None
    return {k: v / 1024.0 for k, v in out.items()}


def kib(v):
    return int(v.split()[0]) if v else 0


def dir_bytes(path):
    """Bytes allocated on disk under path (what du reports) and apparent bytes."""
    alloc = apparent = 0
    for base, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(base, name))
            alloc += st.st_blocks * 512
            apparent += st.st_size
    return alloc, apparent


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_request(port, method, path, body=None, key=ADMIN_KEY, tls_ctx=None, timeout=10):
    if tls_ctx is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls_ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# ---- the parts of a scenario ----------------------------------------------------

class Hookd:
    def __init__(self, bench, name, extra_env=None):
        self.bench = bench
        self.dir = os.path.join(bench.work, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "hookd.log")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("HOOKD_"):
                del env[k]
        env["HOOKD_ADMIN_KEY"] = ADMIN_KEY
        env["HOOKD_DELIVERY_ALLOW_TARGETS"] = "127.0.0.1/32"
        env.update(bench.hookd_env)
        env.update(extra_env or {})
        self.env = env
        args = [bench.hookd_bin, "serve", "--config", os.path.join(ROOT, "conf", "hookd.conf"),
                "--listen", "127.0.0.1:0", "--data", self.data]
        self.proc = PROCS.start(args, self.log, env=env, cwd=self.dir)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline:
            text = self.log_text()
            port = None
            for line in text.splitlines():
                if "listening on http://127.0.0.1:" in line:
                    port = int(line.rsplit(":", 1)[1])
            if port and " ready" in text:
                self.port = port
                break
            if self.proc.poll() is not None:
                raise BenchError("hookd exited at start (status %s):\n%s" % (self.proc.returncode, text[-2000:]))
            time.sleep(0.02)
        if self.port is None:
            raise BenchError("hookd did not become ready in 20 s:\n" + self.log_text()[-2000:])

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def url(self):
        return "http://127.0.0.1:%d%s" % (self.port, SIGNAL_PATH)

    def check_signal_endpoint(self):
        """One probe signal, so that a build without the engine fails here with its answer."""
        status, body = http_request(self.port, "POST", SIGNAL_PATH,
                                    {"EventName": "bench.probe", "PrimaryKey": 1, "Data": {}})
        if status == 404:
            raise BenchError("hookd answers 404 to POST %s: this build has no event ingest (the delivery "
                             "engine), so there is nothing to measure. Body: %s" % (SIGNAL_PATH, body[:300]))
        if status != 204:
            raise BenchError("hookd answers %d to POST %s (expected 204): %s" % (status, SIGNAL_PATH, body[:300]))

    def create_webhook(self, name, target_url):
        status, body = http_request(self.port, "POST", "/api/v1/Webhook", {
            "Name": name, "Events": [EVENT], "TargetUrl": target_url, "Secret": SECRET,
            "State": "Active", "Type": "webhook"})
        if status != 200:
            raise BenchError("creating webhook %s answered %d: %s" % (name, status, body[:300]))
        return json.loads(body)["WebhookId"]

    def cpu(self):
        return cpu_seconds(self.pid)

    def stop(self):
        rc = PROCS.stop(self.proc, timeout=30)
        if rc not in (0, None):
            print("  note: hookd exited with status %s (log: %s)" % (rc, self.log), file=sys.stderr)

    def remove_data(self):
        shutil.rmtree(self.data, ignore_errors=True)


class Receiver:
    def __init__(self, bench, name, nports=1, tls=False, port=None, signed=True):
        """signed=False for the relay's deliveries, which carry no signatures to check."""
        self.bench = bench
        self.dir = os.path.join(bench.work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.tls = tls
        ports_file = os.path.join(self.dir, "receiver.ports")
        if os.path.exists(ports_file):
            os.unlink(ports_file)
        self.out = os.path.join(self.dir, "receiver.out")
        args = [bench.receiver_bin, "--nports", str(nports), "--ports-file", ports_file, "--status", "204"]
        if signed:
            args += ["--secret", SECRET]
        if port:
            args += ["--port", str(port)]
        if tls:
            args += ["--tls-cert", bench.ca["cert"], "--tls-key", bench.ca["key"]]
        outf = open(self.out, "ab")
        self.proc = PROCS.start(args, os.path.join(self.dir, "receiver.log"), stdout=outf)
        outf.close()
        self.pid = self.proc.pid
        deadline = time.time() + 10
        self.ports = []
        while time.time() < deadline:
            if os.path.exists(ports_file):
                with open(ports_file) as f:
                    lines = f.read().split()
                if len(lines) == nports:
                    self.ports = [int(x) for x in lines]
                    break
            if self.proc.poll() is not None:
                raise BenchError("receiver exited at start (status %s)" % self.proc.returncode)
            time.sleep(0.02)
        if not self.ports:
            raise BenchError("receiver did not start listening")
        self.tls_ctx = None
        if tls:
            self.tls_ctx = ssl.create_default_context(cafile=bench.ca["ca"])

    def url(self, i=0):
        return "%s://127.0.0.1:%d/hook/%d" % ("https" if self.tls else "http", self.ports[i], i)

    def stats(self):
        status, body = http_request(self.ports[0], "GET", "/stats", key=None, tls_ctx=self.tls_ctx)
        if status != 200:
            raise BenchError("receiver /stats answered %d" % status)
        return json.loads(body)

    def cpu(self):
        return cpu_seconds(self.pid)

    def pause(self):
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)

    def stop(self):
        PROCS.stop(self.proc)


def check_signatures(st, what):
    if st["bad_signatures"]:
        raise BenchError("%s: %d deliveries failed the signature check, first: %s"
                         % (what, st["bad_signatures"], st["first_bad"]))
    if st["unique"] > 0 and st["verified"] == 0:
        raise BenchError("%s: no delivery carried signatures to check (%d unsigned)" % (what, st["unsigned"]))



class Nginx:
    """nginx on a free port of 127.0.0.1, access log off, keep-alive without limit: `return 204` to
    every request (the ceiling), or with upstream_port a relay of every request to that port
    (`proxy_pass`, HTTP/1.1 keep-alive upstream, no queue: the client waits for the receiver's
    answer). workers > 1 runs a master with that many worker processes."""

    def __init__(self, work, name, workers=1, upstream_port=None):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        if upstream_port:
            upstream = ("    upstream receiver {\n        server 127.0.0.1:%d;\n        keepalive 1024;\n"
                        "        keepalive_requests 100000000;\n        keepalive_timeout 60s;\n    }\n"
                        % upstream_port)
            location = ("location / {\n            proxy_pass http://receiver;\n            proxy_http_version 1.1;\n"
                        "            proxy_set_header Connection \"\";\n        }")
        else:
            upstream = ""
            location = "location / { return 204; }"
        with open(conf, "w") as f:
            f.write("""daemon off;
master_process %(master)s;
worker_processes %(workers)d;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
%(upstream)s    server {
        listen 127.0.0.1:%(port)d;
        %(location)s
    }
}
""" % {"d": self.dir, "port": self.port, "master": "on" if workers > 1 else "off", "workers": workers,
       "upstream": upstream, "location": location})
        self.proc = PROCS.start(["nginx", "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")],
                                os.path.join(self.dir, "stderr.log"))
        self.pid = self.proc.pid
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        PROCS.stop(self.proc, sig=signal.SIGQUIT)
        raise BenchError("nginx did not start; see %s" % os.path.join(self.dir, "error.log"))

    def url(self):
        return "http://127.0.0.1:%d%s" % (self.port, SIGNAL_PATH)

    def cpu(self):
        """CPU seconds of nginx, its workers included."""
        return tree_cpu(self.pid)

    def stop(self):
        PROCS.stop(self.proc, sig=signal.SIGQUIT)


# ---- the machine ------------------------------------------------------------------

def make_ca(work):
    """A throw-away CA (P-256) and a certificate for 127.0.0.1 it signed: {ca, cert, key} paths."""
    d = os.path.join(work, "ca")
    os.makedirs(d, exist_ok=True)
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    cert, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
    csr, ext = os.path.join(d, "server.csr"), os.path.join(d, "server.ext")
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    cmds = [["req", "-x509"] + newkey + ["-keyout", ca_key, "-out", ca, "-days", "2", "-subj",
                                         "/CN=hookd bench CA", "-addext",
                                         "basicConstraints=critical,CA:TRUE", "-addext",
                                         "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-new"] + newkey + ["-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
             "-days", "2", "-extfile", ext]]
    for c in cmds:
        p = subprocess.run(["openssl"] + c, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise BenchError("openssl %s failed: %s" % (c[0], p.stdout.decode()[-500:]))
    return {"ca": ca, "cert": cert, "key": key}

def fsync_latency(work, seconds=1.0):
    """fdatasync of one rewritten 4 KiB block, on the disk that holds the data directories."""
    path = os.path.join(work, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"\0" * (1 << 20))
        os.fsync(fd)
        lat = []
        block = os.urandom(4096)
        end = time.time() + seconds
        i = 0
        while time.time() < end:
            os.pwrite(fd, block, (i % 256) * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1000)
            i += 1
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat)

def machine_info(work, say):
    """The machine, its disk's fdatasync latency, the commit and nginx's version, for the table's header."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        memtotal = int(f.readline().split()[1]) // 1024
    fstype = subprocess.run(["stat", "-f", "-c", "%T", work], stdout=subprocess.PIPE).stdout.decode().strip()
    p50, p99, n = fsync_latency(work)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL).stdout.decode().strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
    ngx = subprocess.run(["nginx", "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(), "cpu": model, "mem_mib": memtotal, "kernel": platform.release(),
        "fs": fstype, "fsync_p50_ms": p50, "fsync_p99_ms": p99, "fsync_n": n,
        "commit": (commit or "(not a git checkout)") + (" with local changes" if dirty else ""),
        "load_start": os.getloadavg(),
        "nginx": ngx.strip().split("/")[-1] if "/" in ngx else ngx.strip(),
    }
    if fstype in ("tmpfs", "ramfs"):
        say("warning: %s is on %s: fsync costs nothing there, durable figures are not real" % (work, fstype))
    say("machine: %d cores (%s), %d MiB, %s; data on %s, fdatasync p50 %.3f ms p99 %.3f ms"
        % (info["cores"], model, memtotal, info["kernel"], fstype, p50, p99))
    return info
