def test_echo(jmap):
    response = jmap.request([["Core/echo", {"hello": [1, "two", None]}, "c1"]])
    assert response["methodResponses"] == [["Core/echo", {"hello": [1, "two", None]}, "c1"]]
