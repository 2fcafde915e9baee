"""Replace the VAPID key pair (RFC 9749 §5); every push subscription is destroyed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from groupware.push.services import vapid_key_rotate


class Command(BaseCommand):
    help = "Generate a new VAPID key pair for Web Push; existing push subscriptions are destroyed."

    def handle(self, *args: Any, **options: Any) -> None:
        key, removed = vapid_key_rotate()
        self.stdout.write(f"New VAPID key (generation {key.generation}): {key.public_key}")
        self.stdout.write(f"Push subscriptions destroyed: {removed}")
