"""End to end: Execute's XML check (libexpat): well-formed XML is delivered as it came, a DOCTYPE is
refused before any entity exists (billion laughs, external entities), and mistakes are named."""
import json

from hookd_test import ADMIN_KEY, Server, run
from receiver import Receiver

ALLOW = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}

LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
          + "".join(' <!ENTITY lol%d "%s">\n' % (i, ("&lol%s;" % (i - 1 if i > 2 else "")) * 10) for i in range(2, 10))
          + ']>\n<lolz>&lol9;</lolz>')


def create_webhook(s, url, extension):
    r = s.request("POST", "/api/v1/Webhook", {"Name": "x", "Events": ["contact.created"], "TargetUrl": url,
                                              "State": "Active", "Extension": extension})
    assert r.status == 200, r
    return r.json()["WebhookId"]


def execute(s, ext, body, content_type="application/xml"):
    return s.request("POST", "/api/rest/Webhooks/Execute?extension=" + ext, body,
                     headers={"Content-Type": content_type}, key=ADMIN_KEY, auth="rest")


def message(r):
    assert r.status == 400, r
    return r.json()["Message"]


def test_doctype_is_refused_and_nothing_is_sent():
    with Receiver() as rx, Server(env=ALLOW) as s:
        create_webhook(s, rx.url + "/hook", "Xml1")
        for body in (LAUGHS,
                     '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
                     '<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://127.0.0.1:9/a.dtd"><a/>',
                     "<!DOCTYPE a><a/>"):
            msg = message(execute(s, "Xml1", body))
            assert "not well-formed XML" in msg and "document type declarations are not accepted" in msg, msg
        assert rx.requests == []
        # The server is unharmed: a plain document goes through, byte for byte.
        doc = '<?xml version="1.0" encoding="UTF-8"?><a b="&lt;1&gt;"><![CDATA[x < y]]>caf\u00e9</a>'
        r = execute(s, "Xml1", doc, content_type="text/xml; charset=utf-8")
        assert r.status == 200 and r.json()["Success"] is True, r
        assert json.loads(rx.wait_for(1)[0].body)["Data"] == {"WebhookBody": doc}


def test_mistakes_are_named():
    with Receiver() as rx, Server(env=ALLOW) as s:
        create_webhook(s, rx.url + "/hook", "Xml2")
        for body, words in [("<a>", "the document ends inside an element"),
                            ("<a><b></a></b>", "does not match its start tag"),
                            ("<a/><b/>", "a second root element"),
                            ("<a/>tail", "text after the root element"),
                            ("<a>&nbsp;</a>", "unknown entity"),
                            ("", "no root element"),
                            ("<a>\n<b>\n</c></a>", "at line 3")]:
            msg = message(execute(s, "Xml2", body))
            assert msg.startswith("Unhandled system exception: Request Body does not match its Content-Type "
                                  "application/xml: it is not well-formed XML (") and words in msg, (body, msg)
        assert rx.requests == []


if __name__ == "__main__":
    run(globals())
