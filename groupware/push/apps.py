from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "groupware.push"
    label = "push"
    verbose_name = "Push"

    def ready(self) -> None:
        from groupware.push import fanout

        # Every process that writes (web, Celery worker, LMTP, management commands) publishes
        # its committed state changes; every push process listens on the channel layer.
        fanout.install()
