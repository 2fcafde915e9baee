from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    # The webmail comes with its own issue; for now the front page says what is here.
    return render(request, "webmail/index.html")
