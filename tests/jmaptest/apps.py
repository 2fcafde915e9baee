from django.apps import AppConfig


class JmapTestConfig(AppConfig):
    name = "tests.jmaptest"
    label = "jmaptest"
