import pytest
from jmap import engine
from accounts.services import user_create
NOTE = "urn:example:jmaptest"; CORE = "urn:ietf:params:jmap:core"

@pytest.mark.django_db
def test_direct():
    u = user_create(email="z@example.com", password="x")
    acc = u.jmap_accounts.get().jmap_id
    def req(calls):
        r = engine.process(u, engine.check_request({"using": [CORE, NOTE], "methodCalls": calls}), session_state="s")
        for x in r["methodResponses"]: print(x)
        return r["methodResponses"]
    r = req([
        ["Note/get", {"accountId": acc, "ids": None}, "g0"],
        ["Note/set", {"accountId": acc, "create": {"b": {"title": "beta", "parentId": "#a"}, "a": {"title": "Alpha", "rank": 3}}}, "s1"],
        ["Note/get", {"accountId": acc, "ids": ["#a", "#b"], "properties": ["title", "parentId"]}, "g1"],
        ["Note/query", {"accountId": acc, "sort": [{"property": "title"}], "calculateTotal": True}, "q1"],
        ["Note/changes", {"accountId": acc, "sinceState": "0", "maxChanges": 1}, "c1"],
        ["Note/changes", {"accountId": acc, "#sinceState": {"resultOf": "c1", "name": "Note/changes", "path": "/newState"}}, "c2"],
    ])
    a_id = r[1][1]["created"]["a"]["id"]; state = r[1][1]["newState"]
    print("----")
    req([
        ["Note/set", {"accountId": acc, "ifInState": state, "update": {a_id: {"title": "Aleph", "body": "x"}}, "destroy": ["#b"]}, "s2"],
        ["Note/changes", {"accountId": acc, "sinceState": state}, "c2"],
        ["Note/queryChanges", {"accountId": acc, "sinceQueryState": state, "sort": [{"property": "title"}]}, "qc"],
        ["Note/set", {"accountId": acc, "ifInState": state}, "s3"],
        ["Note/set", {"accountId": acc, "update": {a_id: {"parentId/x": 1}, "nzz": {}}, "create": {"c": {"title": ""}, "d": {"id": "x", "title": "y"}}}, "s4"],
        ["Note/query", {"accountId": acc, "filter": {"operator": "NOT", "conditions": [{"text": "zzz"}]}, "anchor": a_id, "anchorOffset": -5}, "q2"],
        ["Note/query", {"accountId": acc, "filter": {"operator": "XOR", "conditions": []}}, "q3"],
        ["Note/query", {"accountId": acc, "filter": {"foo": 1}}, "q4"],
        ["Note/query", {"accountId": acc, "sort": [{"property": "title", "collation": "i;nope"}]}, "q5"],
    ])
