"""Names of the non-retryable failures a document can end with.

Each name is the `type` of a Temporal `ApplicationError`, recorded on the document's
row and shown by the CLI, so an operator can tell bad input from a broken service.
"""

from enum import StrEnum


class DocumentError(StrEnum):
    EMPTY_DOCUMENT = "EmptyDocument"
    DOCUMENT_TOO_LARGE = "DocumentTooLarge"
    UNSUPPORTED_TYPE = "UnsupportedDocumentType"
    UNDECODABLE_TEXT = "UndecodableText"
    LINE_TOO_LONG = "LineTooLong"
    DUPLICATE_DOCUMENT = "DuplicateDocument"
    CORRUPT_PDF = "CorruptPdf"
    ENCRYPTED_PDF = "EncryptedPdf"
    NO_TEXT_CONTENT = "NoTextContent"
    BLOB_NOT_FOUND = "BlobNotFound"
    INVALID_INPUT = "InvalidDocumentInput"
    INFERENCE_REJECTED = "InferenceRejected"


NON_RETRYABLE_ERROR_TYPES = [error.value for error in DocumentError]
