import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")

app = Celery("groupware")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["groupware.core", "groupware.mail", "groupware.mail.submission", "groupware.push"])
