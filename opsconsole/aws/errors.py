"""The one exception type callers of opsconsole.aws see."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

# AWS refusing a call for its rate, not for what it asked.
THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)

# Error codes where trying again later can help. Anything else (validation, access denied,
# quota) needs a person to change something first.
_TRANSIENT_CODES = {
    *THROTTLE_CODES,
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "RequestTimeout",
    "ResourceConflictException",  # Lambda: an update is still in progress
    "ConflictException",
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBClusterStateFault",
    "OperationAbortedException",
    # 5xx answers under each service's own name (Lambda, Secrets Manager, IAM).
    "ServiceException",
    "InternalServiceError",
    "ServiceFailure",
}


class AwsError(Exception):
    """An AWS call failed. ``permanent`` says whether a retry without changes can help."""

    def __init__(self, message: str, *, code: str = "", operation: str = "", permanent: bool):
        super().__init__(message)
        self.message = message
        self.code = code
        self.operation = operation
        self.permanent = permanent

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES

    def __str__(self) -> str:
        prefix = f"{self.operation}: " if self.operation else ""
        code = f"{self.code}: " if self.code else ""
        return f"{prefix}{code}{self.message}"


class AwsNotFound(AwsError):
    def __init__(self, message: str, *, code: str = "", operation: str = ""):
        super().__init__(message, code=code, operation=operation, permanent=True)


_NOT_FOUND_SUFFIXES = ("NotFound", "NotFoundException", "NotFoundFault", "NoSuchEntity")


def translate(exc: Exception) -> AwsError:
    """Turn a botocore exception into an AwsError with AWS's own message."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        message = err.get("Message") or str(exc)
        operation = exc.operation_name or ""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code.endswith(_NOT_FOUND_SUFFIXES) or code in {"NoSuchBucket", "404", "NoSuchKey"}:
            return AwsNotFound(message, code=code, operation=operation)
        transient = (
            code in _TRANSIENT_CODES
            or status >= 500
            # IAM's propagation delay: a role created a moment ago is not yet assumable.
            or (code == "InvalidParameterValueException" and "cannot be assumed" in message)
        )
        return AwsError(message, code=code, operation=operation, permanent=not transient)
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return AwsError(f"AWS endpoint unreachable: {exc}", code="Unreachable", permanent=False)
    if isinstance(exc, BotoCoreError):
        return AwsError(str(exc), code=type(exc).__name__, permanent=True)
    raise exc
