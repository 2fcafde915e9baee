import orjson

def test_probe(jmap, other_jmap, settings):
    r = jmap.http.get("/.well-known/jmap", HTTP_AUTHORIZATION=jmap.auth)
    print(r.status_code, dict(r.headers))
    print(orjson.dumps(orjson.loads(r.content), option=orjson.OPT_INDENT_2).decode())
    r = jmap.http.head("/jmap/session", HTTP_AUTHORIZATION=jmap.auth)
    print(r.status_code, dict(r.headers), r.content)
    r = jmap.http.post("/jmap/session", HTTP_AUTHORIZATION=jmap.auth)
    print(r.status_code, dict(r.headers), r.content)
