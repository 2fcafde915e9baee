"""The session resource and the API endpoint over HTTP."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from jmap import engine, errors
from jmap.http import ConcurrencyLimiter, authenticated, json_response, method_not_allowed
from jmap.session import session_resource, session_state

_requests = ConcurrencyLimiter("maxConcurrentRequests")


@authenticated
def session_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(["GET", "HEAD"])
    response = json_response(session_resource(request.jmap_user, request))
    response["Cache-Control"] = "no-cache, no-store, must-revalidate"
    return response


@authenticated
def api_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_not_allowed(["POST"])
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise errors.not_json("The request must have Content-Type application/json.")
    length = request.META.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > settings.JMAP["maxSizeRequest"]:
        raise errors.limit("maxSizeRequest", "The request is larger than the server is willing to process.")
    user = request.jmap_user
    with _requests.slot(user.pk, settings.JMAP["maxConcurrentRequests"]):
        maximum = settings.JMAP["maxSizeRequest"]
        body = request.read(maximum + 1)  # bounded, whatever Content-Length claimed
        if len(body) > maximum:
            raise errors.limit("maxSizeRequest", "The request is larger than the server is willing to process.")
        parsed = engine.parse_request(body)
        result = engine.process(user, parsed, session_state=session_state(user))
    response = json_response(result)
    response["Cache-Control"] = "no-store"
    return response
