"""Test settings: the real settings plus a test-only JMAP data type and a fast hasher."""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="groupware-test-"))
os.environ.setdefault("FAST_PASSWORD_HASHER", "true")

from groupware.settings import *  # noqa: F403
from groupware.settings import INSTALLED_APPS, JMAP_METHOD_MODULES

# A small data type ("Note") used only to test the generic standard methods.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.jmaptest"]
JMAP_METHOD_MODULES = [*JMAP_METHOD_MODULES, "tests.jmaptest.methods", "tests.jmaptest.failing"]

# The tests run the relay explicitly (groupware.mail.submission.relay.relay_due), so what
# they check never races a background sender; one test turns dispatching back on.
SUBMISSION_DISPATCH = "manual"

# The SQLite test database is a file, as deployed (WAL, a busy timeout), not Django's
# shared-cache in-memory default, whose connections refuse at once ("database table is
# locked") where a file database waits: threads and processes read and write as they do
# in production.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["DATA_DIR"], "test.sqlite3")}  # noqa: F405
