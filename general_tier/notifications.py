"""Tell the user a document finished: a log line always, an HTTP webhook when set.

Webhook calls go through a circuit breaker, so a dead endpoint costs one fast failure
per notification instead of a timeout each. The target must be on an allow-list and
never resolve to a link-local or cloud-metadata address, so a configured URL cannot be
turned into a request for the machine's credentials.
"""

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx

from orchestration.models import Notification

logger = logging.getLogger(__name__)


class CircuitOpenError(Exception):
    pass


class WebhookTargetRefusedError(Exception):
    pass


METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "169.254.169.254"})


async def check_webhook_target(url: str, allowed_hosts: frozenset[str]) -> None:
    """Refuse a webhook URL whose host is not allowed or resolves somewhere it must
    never reach. Resolved on every call: a name can change its address."""
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    if parsed.scheme not in ("http", "https") or not host:
        raise WebhookTargetRefusedError(f"webhook URL must be http(s): {url!r}")
    if host in METADATA_HOSTS:
        raise WebhookTargetRefusedError(f"webhook host {host} is a metadata service")
    if host not in allowed_hosts:
        raise WebhookTargetRefusedError(
            f"webhook host {host} is not in HEYSH_WEBHOOK_ALLOWED_HOSTS"
        )
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        resolved = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError as err:
        raise WebhookTargetRefusedError(
            f"webhook host {host} does not resolve"
        ) from err
    for *_, address in resolved:
        ip = ipaddress.ip_address(address[0])
        if ip.is_link_local or str(ip) in METADATA_HOSTS or ip.is_multicast:
            raise WebhookTargetRefusedError(
                f"webhook host {host} resolves to a forbidden address {ip}"
            )


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
        self,
        webhook_url: str | None,
        timeout_s: float,
        breaker: CircuitBreaker,
        allowed_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.webhook_url = webhook_url
        self.breaker = breaker
        self.allowed_hosts = allowed_hosts
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

        await check_webhook_target(self.webhook_url, self.allowed_hosts)
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
