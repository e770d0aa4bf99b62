"""Store and endpoint URLs are shown without their credentials, and a bad store URL stops medops at start."""

from __future__ import annotations

import pytest

from medops.core.errors import ConfigError
from medops.core.settings.config import Settings, check_settings
from medops.core.settings.redact import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@store.internal:6379/0", "redis://***@store.internal:6379/0"),
    ("rediss://ops:s3cret@store.internal/2", "rediss://***@store.internal/2"),
    ("redis://store.internal:6379/0", "redis://store.internal:6379/0"),
])
def test_a_store_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_store_url_that_is_not_redis_is_refused_without_showing_its_password() -> None:
    settings = Settings(store_url="http://ops:s3cret@store.internal:6379")
    with pytest.raises(ConfigError) as refused:
        check_settings(settings, dict.fromkeys(("store_url", *Settings.__dataclass_fields__), "MEDOPS_STORE_URL"))
    assert "store_url" in str(refused.value) and "redis://" in str(refused.value)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://store:6379/0?password=s3cret&db=0", "redis://store:6379/0?password=***&db=0"),
    ("redis://:s3cret@[::1]:6379/0", "redis://***@[::1]:6379/0"),
])
def test_credentials_in_the_query_or_beside_an_ipv6_host_are_hidden_too(url: str, shown: str) -> None:
    assert redact_url(url) == shown
