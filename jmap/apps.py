from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class JmapConfig(AppConfig):
    name = "jmap"
    verbose_name = "JMAP"

    def ready(self) -> None:
        from jmap.registry import registry

        # Every module that registers capabilities and methods, listed in one place.
        for module in settings.JMAP_METHOD_MODULES:
            import_module(module)
        registry.freeze()
