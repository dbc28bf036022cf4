"""Activities of the general queue: validate_document and notify_user."""

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from general_tier.notifications import (
    CircuitOpenError,
    Notifier,
    WebhookTargetRefusedError,
)
from general_tier.validation import InvalidDocument, Limits, check_size, validate
from orchestration.blobs import BlobNotFoundError, BlobStore
from orchestration.errors import DocumentError
from orchestration.models import Notification, ValidatedDocument, ValidationInput


class GeneralActivities:
    def __init__(self, blobs: BlobStore, limits: Limits, notifier: Notifier):
        self.blobs = blobs
        self.limits = limits
        self.notifier = notifier

    @activity.defn(name="validate_document")
    async def validate_document(self, request: ValidationInput) -> ValidatedDocument:
        ref = request.ref
        try:
            if request.duplicate_of:
                raise InvalidDocument(
                    DocumentError.DUPLICATE_DOCUMENT,
                    f"same content as document {request.duplicate_of}",
                )
            check_size(self.blobs.size(ref.blob_uri), self.limits)
            data = await self.blobs.aread(ref.blob_uri)
            verdict = await asyncio.to_thread(validate, data, self.limits)
        except InvalidDocument as err:
            raise ApplicationError(
                err.message, type=err.error, non_retryable=True
            ) from err
        except BlobNotFoundError as err:
            raise ApplicationError(
                str(err), type=DocumentError.BLOB_NOT_FOUND, non_retryable=True
            ) from err

        activity.logger.info(
            "document %s is %s (%s)",
            ref.document_id,
            verdict.media_type,
            verdict.encoding or "binary",
        )
        return ValidatedDocument(
            media_type=verdict.media_type, encoding=verdict.encoding
        )

    @activity.defn(name="notify_user")
    async def notify_user(self, notification: Notification) -> bool:
        try:
            return await self.notifier.send(notification)
        except CircuitOpenError as err:
            # Retrying inside the cooldown cannot succeed; let Temporal's backoff
            # bring the next attempt after it.
            raise ApplicationError(str(err), type="WebhookCircuitOpen") from err
        except WebhookTargetRefusedError as err:
            raise ApplicationError(
                str(err), type="WebhookTargetRefused", non_retryable=True
            ) from err
