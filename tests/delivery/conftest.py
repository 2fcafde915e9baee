import pytest

from groupware.mail.delivery.recipients import recipient_cache_clear


@pytest.fixture(autouse=True)
def _fresh_recipient_cache():
    # Each test makes its users anew (same addresses, new rows).
    recipient_cache_clear()
    yield
    recipient_cache_clear()
