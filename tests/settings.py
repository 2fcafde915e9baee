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

# Push processes without Redis read their accounts' states periodically (jmap.push.hub);
# in the tests that read would meet the writes of the shared-cache in-memory SQLite database
# (which refuses a write at once while another connection reads). The test of the reading
# turns it on.
PUSH_POLL_SECONDS = 3600.0
