"""A local SMTP sink for tests: accepts every mail and records it.

Standard library only. Import it from other tests::

    from smtp_sink import SmtpSink

    with SmtpSink() as sink:                    # listens on 127.0.0.1:sink.port
        ... configure hookd with HOOKD_SMTP_HOST=127.0.0.1, HOOKD_SMTP_PORT=sink.port ...
        mails = sink.wait_for(1, timeout=10)    # list of Mail
        m = mails[0]
        assert m.rcpt == ["ops@example.com"]
        assert "webhook 1" in m.subject and "Event id:" in m.text

SmtpSink(tls_cert=None, tls_key=None, reject=(), hello_only=False) speaks
enough ESMTP for a client that sends one mail per connection: the 220
greeting, EHLO (listing 8BITMIME, SIZE and, when tls_cert is given,
STARTTLS), HELO, STARTTLS (the socket is wrapped with ssl and the session
starts over, as RFC 3207 says), MAIL FROM, RCPT TO (addresses in `reject`
get 550), DATA (the message ends at CRLF.CRLF; leading dots are unstuffed),
RSET, NOOP and QUIT. With hello_only=True it refuses EHLO with 502 so that
the client must fall back to HELO.

Every accepted message is recorded as a Mail with mail_from, rcpt (list),
data (the raw bytes after unstuffing, CRLF line endings kept), tls
(whether STARTTLS was used), helo (the name the client gave), commands
(the command lines received, in order) and .message (email.message parsed
with the default policy: .subject, .text, .header(name) are shortcuts).
sink.mails returns a copy of the list, sink.wait_for(n, timeout) waits
until at least n arrived, sink.clear() forgets them, sink.close() stops.
Bare LF line endings in DATA are noted in sink.protocol_errors (a client
must send CRLF).
"""
import email
import email.policy
import socket
import socketserver
import ssl
import threading
import time

__all__ = ["SmtpSink", "Mail"]

MAX_LINE = 4096
MAX_DATA = 10 * 1024 * 1024


class Mail:
    """One message the sink accepted."""

    def __init__(self, mail_from, rcpt, data, tls, helo, commands):
        self.mail_from = mail_from
        self.rcpt = rcpt
        self.data = data
        self.tls = tls
        self.helo = helo
        self.commands = commands
        self.message = email.message_from_bytes(data, policy=email.policy.default)

    @property
    def subject(self):
        return str(self.message["Subject"] or "")

    @property
    def text(self):
        return self.message.get_content()

    def header(self, name):
        v = self.message[name]
        return None if v is None else str(v)

    def __repr__(self):
        return "<Mail from %s to %s %r>" % (self.mail_from, self.rcpt, self.subject)


def _addr(arg):
    """The address inside FROM:<a> / TO:<a>."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        rest = rest[1:rest.index(">")] if ">" in rest else rest[1:]
    return rest.split()[0] if rest else ""


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def setup(self):
        super().setup()
        self.sink = self.server.sink
        self.tls = False
        self.helo = None
        self.commands = []
        self._reset()

    def _reset(self):
        self.mail_from = None
        self.rcpt = []

    def send(self, line):
        self.wfile.write(line.encode("ascii") + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(MAX_LINE + 2)
        if not line:
            return None
        if not line.endswith(b"\r\n"):
            self.sink._note("command line not ended by CRLF: %r" % line)
        return line.rstrip(b"\r\n").decode("utf-8", "replace")

    def handle(self):
        self.send("220 sink.test ESMTP test sink")
        while True:
            try:
                line = self.readline()
            except (OSError, ssl.SSLError, ValueError):
                return
            if line is None:
                return
            self.commands.append(line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                if self.sink.hello_only:
                    self.send("502 5.5.1 EHLO not implemented")
                    continue
                self.helo = arg
                self._reset()
                ext = ["sink.test greets %s" % arg, "8BITMIME", "SIZE %d" % MAX_DATA]
                if self.sink.tls_ctx is not None and not self.tls:
                    ext.append("STARTTLS")
                for i, e in enumerate(ext):
                    self.send("250%s%s" % ("-" if i + 1 < len(ext) else " ", e))
            elif verb == "HELO":
                self.helo = arg
                self._reset()
                self.send("250 sink.test")
            elif verb == "STARTTLS":
                if self.sink.tls_ctx is None or self.tls:
                    self.send("502 5.5.1 no STARTTLS here")
                    continue
                self.send("220 2.0.0 go ahead")
                try:
                    conn = self.sink.tls_ctx.wrap_socket(self.connection, server_side=True)
                except (OSError, ssl.SSLError) as e:
                    self.sink._note("TLS handshake failed: %s" % e)
                    return
                self.connection = self.request = conn
                self.rfile = conn.makefile("rb")
                self.wfile = conn.makefile("wb")
                self.tls = True
                self.helo = None
                self._reset()
            elif verb == "MAIL":
                if self.helo is None:
                    self.send("503 5.5.1 EHLO first")
                    continue
                self.mail_from = _addr(arg)
                self.rcpt = []
                self.send("250 2.1.0 ok")
            elif verb == "RCPT":
                if self.mail_from is None:
                    self.send("503 5.5.1 MAIL first")
                    continue
                a = _addr(arg)
                if a in self.sink.reject:
                    self.send("550 5.1.1 <%s>: no such user" % a)
                    continue
                self.rcpt.append(a)
                self.send("250 2.1.5 ok")
            elif verb == "DATA":
                if not self.rcpt:
                    self.send("503 5.5.1 RCPT first")
                    continue
                self.send("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while True:
                    raw = self.rfile.readline(MAX_LINE * 4)
                    if not raw:
                        return
                    if not raw.endswith(b"\r\n"):
                        self.sink._note("DATA line not ended by CRLF: %r" % raw[:80])
                    if raw == b".\r\n":
                        break
                    if raw.startswith(b"."):
                        raw = raw[1:]
                    data += raw
                    if len(data) > MAX_DATA:
                        self.send("552 5.3.4 too big")
                        return
                self.sink._record(Mail(self.mail_from, list(self.rcpt), bytes(data), self.tls, self.helo,
                                       list(self.commands)))
                self._reset()
                self.send("250 2.0.0 queued")
            elif verb == "RSET":
                self._reset()
                self.send("250 2.0.0 ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 bye")
                return
            else:
                self.send("500 5.5.2 unknown command")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sink):
        self.sink = sink
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request, client_address):
        pass


class SmtpSink:
    """A recording SMTP server on 127.0.0.1; see the module docstring."""

    def __init__(self, tls_cert=None, tls_key=None, reject=(), hello_only=False):
        self._cond = threading.Condition()
        self._mails = []
        self.protocol_errors = []
        self.reject = set(reject)
        self.hello_only = hello_only
        self.tls_ctx = None
        if tls_cert is not None:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(tls_cert, tls_key)
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        self.closed = False

    @property
    def port(self):
        return self._server.server_address[1]

    def _record(self, mail):
        with self._cond:
            self._mails.append(mail)
            self._cond.notify_all()

    def _note(self, text):
        with self._cond:
            self.protocol_errors.append(text)

    @property
    def mails(self):
        with self._cond:
            return list(self._mails)

    def clear(self):
        with self._cond:
            self._mails = []

    def wait_for(self, n, timeout=10.0):
        """Waits until at least n mails arrived; returns them all."""
        deadline = time.time() + timeout
        with self._cond:
            while len(self._mails) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("SMTP sink got %d of %d mails within %ss: %r" %
                                         (len(self._mails), n, timeout, self._mails))
                self._cond.wait(left)
            return list(self._mails)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":
    with SmtpSink() as s:
        print("READY port=%d" % s.port, flush=True)
        try:
            while True:
                for m in s.wait_for(len(s.mails) + 1, timeout=3600)[-1:]:
                    print(m, flush=True)
        except KeyboardInterrupt:
            pass
