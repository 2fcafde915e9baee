"""A bare Django view for the benchmark (bench/), mounted only when BENCH_VIEWS=1.

It answers a JMAP Request made only of Core/echo calls with the same JSON the JMAP engine
returns, but with no authentication, validation, limits or per-call transaction. The
difference between its latency and the real /jmap/api/ on the same server in the same run
is what the JMAP layer adds.
"""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from groupware.config import env_bool


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    body = orjson.loads(request.body)
    result = {
        "methodResponses": [[name, arguments, call_id] for name, arguments, call_id in body["methodCalls"]],
        "sessionState": "0",
    }
    response = HttpResponse(orjson.dumps(result), content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [path("echo", echo, name="bench-echo")] if env_bool("BENCH_VIEWS", False) else []
