"""``manage.py create_user``: a user with their JMAP account, and optionally credentials."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from accounts import services
from accounts.models import User


class Command(BaseCommand):
    help = "Create a user with their JMAP account; optionally an app password and an API token."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email", help="The login and primary address.")
        parser.add_argument("--password", required=True, help="The account password.")
        parser.add_argument("--name", default="", help="Display name.")
        parser.add_argument("--staff", action="store_true", help="May use the admin site.")
        parser.add_argument("--superuser", action="store_true", help="Has every permission (implies --staff).")
        parser.add_argument("--app-password", metavar="NAME", help="Also create an app password with this name.")
        parser.add_argument("--token", metavar="NAME", help="Also create an API (Bearer) token with this name.")
        parser.add_argument(
            "--skip-password-validation",
            action="store_true",
            help="Accept a password the configured validators would reject (tests, benchmarks).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        email: str = options["email"].strip()
        password: str = options["password"]
        if not options["skip_password_validation"]:
            try:
                password_validation.validate_password(password, User(email=email))
            except ValidationError as error:
                raise CommandError("Password rejected: " + " ".join(error.messages))
        try:
            # One transaction: a failure half-way leaves no user without the asked-for credentials.
            with transaction.atomic():
                user = services.user_create(
                    email=email,
                    password=password,
                    name=options["name"],
                    is_staff=options["staff"] or options["superuser"],
                    is_superuser=options["superuser"],
                )
                app_password = token = None
                if options["app_password"]:
                    app_password = services.app_password_create(user=user, name=options["app_password"])
                if options["token"]:
                    token = services.api_token_create(user=user, name=options["token"])
        except ValidationError as error:
            raise CommandError(_describe(error))
        except IntegrityError:
            # Two creations racing past the validation: the unique index decides.
            raise CommandError(f"A user with the email address {email} already exists.")

        account = services.primary_account(user)
        self.stdout.write(f"Created user {user.email}")
        if account is not None:
            self.stdout.write(f"Account id: {account.jmap_id}")
        if app_password is not None:
            self.stdout.write(f"App password ({app_password[0].name}): {app_password[1]}")
        if token is not None:
            self.stdout.write(f"API token ({token[0].name}): {token[1]}")
        if app_password is not None or token is not None:
            self.stdout.write("Credentials are stored only as digests: copy them now.")


def _describe(error: ValidationError) -> str:
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    parts = []
    for field, messages in error.message_dict.items():
        text = " ".join(messages)
        parts.append(text if field == NON_FIELD_ERRORS else f"{field}: {text}")
    return " ".join(parts)
