"""Prepare the benchmark database: migrate, create the bench user, and an API token if the
project has them. Run by bench/run.py with the servers' environment; prints one JSON line."""

from __future__ import annotations

import inspect
import json
import os


def api_token(user) -> tuple[str | None, str]:
    """A Bearer token from accounts.services.api_token_create, or None and the reason."""
    from accounts import services

    create = getattr(services, "api_token_create", None)
    if create is None:
        return None, "accounts.services.api_token_create does not exist"
    parameters = inspect.signature(create).parameters
    arguments = {}
    if "user" in parameters:
        arguments["user"] = user
    if "name" in parameters:
        arguments["name"] = "bench"
    result = create(**arguments)
    candidates = result if isinstance(result, tuple) else (result,)
    for candidate in candidates:
        if isinstance(candidate, str):
            return candidate, ""
        for attribute in ("token", "secret", "plaintext", "raw"):
            value = getattr(candidate, attribute, None)
            if isinstance(value, str):
                return value, ""
    return None, f"api_token_create returned {type(result).__name__}; no token string found in it"


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)

    from accounts.services import primary_account, user_create

    user = user_create(email="bench@example.com", password=os.environ["BENCH_PASSWORD"], name="Bench")
    token, token_reason = api_token(user)
    print(
        "BENCH_JSON "
        + json.dumps(
            {
                "email": user.email,
                "account_id": primary_account(user).jmap_id,
                "token": token,
                "token_reason": token_reason,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
