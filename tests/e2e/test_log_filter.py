"""End to end: the one EnergyCAP filter grammar on the attempt log: the forms
the webhook list accepted work on the log too, and a filter that does not
parse is a 400 in the EnergyCAP shape quoting the token at fault."""
import time
import urllib.parse

from hookd_test import Server, run
from receiver import Receiver, Reply

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32", "HOOKD_DELIVERY_RETRY_JITTER": "0",
            "HOOKD_DELIVERY_RETRY_SCHEDULE": "0s", "HOOKD_DELIVERY_DISABLE_AFTER": "1000"}


def q(expr):
    return urllib.parse.quote(expr)


def results(s, wid, expr):
    r = s.request("GET", "/api/v3/webhook/%d/log?filter=%s" % (wid, q(expr)), auth="eci")
    assert r.status == 200, (expr, r)
    assert int(r.header("TotalNumberOfRecords")) == len(r.json()), r.headers
    return sorted(it["result"] for it in r.json())


def test_the_log_takes_the_one_grammar():
    # Primary keys 0..5 answer 200, 200, 404, 500, 200, 201.
    answers = {0: 200, 1: 200, 2: 404, 3: 500, 4: 200, 5: 201}

    def handler(req):
        return Reply(status=answers[req.json()["PrimaryKey"]])

    with Receiver(handler=handler) as rx:
        with Server(env=LOOPBACK) as s:
            r = s.request("POST", "/api/v1/Webhook", {"Name": "Logged", "Events": ["f.event"], "TargetUrl": rx.url,
                                                      "Secret": "s"})
            assert r.status == 200, r
            wid = r.json()["WebhookId"]
            for pk in answers:
                assert s.request("POST", "/api/v1/Webhook/f.event/%d" % pk, {"n": pk}).status == 204
            deadline = time.time() + 20
            while int(s.request("GET", "/api/v3/webhook/%d/log" % wid, auth="eci")
                      .header("TotalNumberOfRecords")) < len(answers):
                assert time.time() < deadline, "attempts not logged"
                time.sleep(0.05)

            # The log's own forms.
            assert results(s, wid, "result equals '200'") == ["200"] * 3
            assert results(s, wid, "result one of '404','500'") == ["404", "500"]
            assert results(s, wid, "result between 200 and 299") == ["200", "200", "200", "201"]
            assert results(s, wid, "result greater than or equal 400") == ["404", "500"]
            # The webhook list's forms, now on the log too; keywords in any case.
            assert results(s, wid, "result in 404|500") == ["404", "500"]
            assert results(s, wid, "result not one of 200|201") == ["404", "500"]
            assert results(s, wid, "result ne 200 and result not equals 201") == ["404", "500"]
            assert results(s, wid, "RESULT EQ 201") == ["201"]
            assert results(s, wid, "result like 0") == sorted(str(v) for v in answers.values())
            day = s.request("GET", "/api/v3/webhook/%d/log" % wid, auth="eci").json()[0]["logDate"][:10]
            assert results(s, wid, "logDate one of %s" % day) == sorted(str(v) for v in answers.values())
            assert results(s, wid, "logDate not one of %s" % day) == []

            # Errors name the token at fault, in both places.
            for path, expr, token in (
                    ("/api/v3/webhook/%d/log" % wid, "color equals red", '"color"'),
                    ("/api/v3/webhook/%d/log" % wid, "logDate greater than yesterday", '"yesterday"'),
                    ("/api/v3/webhook/%d/log" % wid, "result equals 200 and", '"and"'),
                    ("/api/v3/webhook/%d/log" % wid, "result equals 200 or result equals 404", '"or"'),
                    ("/api/v3/webhook/%d/log" % wid, "logDate like 2026", '"like"'),
                    ("/api/v3/webhook/%d/log" % wid, "result frobs 1", '"frobs"'),
                    ("/api/v3/webhook/%d/log" % wid, "result equals 'open", "'open"),
                    ("/api/v3/webhook/%d/log" % wid, "result equals abc", '"abc"')):
                r = s.request("GET", path + "?filter=" + q(expr), auth="eci")
                assert r.status == 400, (expr, r)
                body = r.json()
                assert body["status"] == 400 and body["title"] == "Bad Request", body
                assert token in body["message"] and body["errors"]["filter"] == [body["message"]], (expr, body)
            # A token that is not valid UTF-8 is quoted without breaking the JSON.
            r = s.request("GET", "/api/v3/webhook/%d/log?filter=%%C3%%28x%%ff%%20equals%%201" % wid, auth="eci")
            assert r.status == 400 and "?(x?" in r.json()["message"], r


if __name__ == "__main__":
    run(globals())
