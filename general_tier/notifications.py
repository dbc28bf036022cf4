"""Tell the user a document finished: a log line always, an HTTP webhook when set.

Webhook calls go through a circuit breaker, so a dead endpoint costs one fast failure
per notification instead of a timeout each.
"""

import logging
import time
from dataclasses import dataclass, field

import httpx

from orchestration.models import Notification

logger = logging.getLogger(__name__)


class CircuitOpenError(Exception):
    pass


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures; lets one trial call through once
    `cooldown_s` has passed."""

    threshold: int = 5
    cooldown_s: float = 30.0
    failures: int = 0
    opened_at: float | None = field(default=None)

    def check(self) -> None:
        if self.opened_at is None:
            return
        if time.monotonic() - self.opened_at < self.cooldown_s:
            raise CircuitOpenError(
                f"webhook circuit open after {self.failures} consecutive failures"
            )

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


class Notifier:
    def __init__(
        self, webhook_url: str | None, timeout_s: float, breaker: CircuitBreaker
    ) -> None:
        self.webhook_url = webhook_url
        self.breaker = breaker
        self._http = httpx.AsyncClient(timeout=timeout_s) if webhook_url else None

    async def send(self, notification: Notification) -> bool:
        """Log the notification and deliver it to the webhook; True when delivered."""
        logger.info(
            "document %s (%s) %s%s",
            notification.document_id,
            notification.name,
            notification.status,
            f": {notification.error_type}" if notification.error_type else "",
        )
        if self._http is None or self.webhook_url is None:
            return False

        self.breaker.check()
        try:
            response = await self._http.post(
                self.webhook_url,
                json=notification.model_dump(mode="json"),
                headers={"Idempotency-Key": _idempotency_key(notification)},
            )
            response.raise_for_status()
        except httpx.HTTPError:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return True

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def _idempotency_key(notification: Notification) -> str:
    # A retried activity sends the same key, so the receiver can drop the repeat.
    return f"{notification.document_id}:{notification.status}"
