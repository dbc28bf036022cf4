"""Webhook safety: the allow-list, forbidden addresses, and the circuit breaker."""

import pytest

from general_tier.notifications import (
    CircuitBreaker,
    CircuitOpenError,
    WebhookTargetRefusedError,
    check_webhook_target,
)

ALLOWED = frozenset({"127.0.0.1", "localhost", "169.254.169.254", "metadata"})


async def test_an_allowed_loopback_target_passes() -> None:
    await check_webhook_target("http://127.0.0.1:9000/hook", ALLOWED)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/computeMetadata/v1/",  # metadata, even when listed
        "http://metadata.google.internal/",
        "http://example.org/hook",  # not on the allow-list
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
    ],
)
async def test_forbidden_targets_are_refused(url: str) -> None:
    with pytest.raises(WebhookTargetRefusedError):
        await check_webhook_target(url, ALLOWED)


async def test_a_listed_host_that_resolves_link_local_is_refused() -> None:
    with pytest.raises(WebhookTargetRefusedError, match="forbidden address"):
        await check_webhook_target(
            "http://169.254.10.10/", frozenset({"169.254.10.10"})
        )


def test_breaker_opens_after_consecutive_failures_and_recovers() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=60)
    for _ in range(2):
        breaker.record_failure()
        breaker.check()
    breaker.record_failure()
    with pytest.raises(CircuitOpenError):
        breaker.check()

    breaker.opened_at = -1e9  # the cooldown has passed: one trial call goes through
    breaker.check()
    breaker.record_success()
    assert breaker.failures == 0
    breaker.check()
