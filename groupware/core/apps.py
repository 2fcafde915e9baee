from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "groupware.core"
    label = "core"
    verbose_name = "Core storage"
