"""End to end: text from a receiver reaches the server log escaped, never as raw control characters."""
import time

from hookd_test import run, Server, wait_until
from receiver import Receiver, Reply

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32", "HOOKD_DELIVERY_RETRY_JITTER": "0",
            "HOOKD_DELIVERY_DISABLE_AFTER": "1", "HOOKD_DELIVERY_RETRY_SCHEDULE": "0s"}

# A reason phrase that tries to forge a log line and drive the operator's terminal.
REASON = b"Bad\x1b[2J\x1b]0;owned\x07\x08\x08\x08forged error line\x0bz"


def test_reason_phrase_is_escaped_in_the_log():
    with Receiver() as rx, Server(env=LOOPBACK) as s:
        rx.reply(raw=b"HTTP/1.1 500 " + REASON + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        r = s.request("POST", "/api/v1/Webhook", {"Name": "esc", "Events": ["t.esc"], "TargetUrl": rx.url + "/h",
                                                  "State": "Active", "Type": "webhook"})
        assert r.status == 200, r
        assert s.request("POST", "/api/v1/Webhook/t.esc/1", {"n": 1}).status == 204
        rx.wait_for(1)
        line = wait_until(lambda: next((l for l in s.log().splitlines() if "disabled (TooManyErrors)" in l), None),
                          what="the disable line")
        assert "HTTP/1.1 500 Bad\\x1b[2J\\x1b]0;owned\\x07\\x08\\x08\\x08forged error line\\x0bz" in line, line
        raw = s.log()
        for ch in ("\x1b", "\x07", "\x08", "\x0b"):
            assert ch not in raw, repr(raw[-2000:])
        assert not any(l.startswith("forged") for l in raw.splitlines()), raw


if __name__ == "__main__":
    run(globals())
