from django.db import models
from django.utils import timezone


class Note(models.Model):
    """A tiny record type used only by the tests of the generic standard methods."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    body = models.TextField(default="")
    rank = models.IntegerField(default=0)
    is_pinned = models.BooleanField(default=False)
    parent = models.ForeignKey("self", null=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.title
