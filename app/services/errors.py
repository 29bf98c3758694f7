"""Domain exceptions: services raise these; the HTTP layer turns them into the API error envelope."""
from __future__ import annotations


class DomainError(Exception):
    code = "SERVER_ERROR"
    status = 500

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(DomainError):
    """Client input that fails a business rule. `details` maps field names to messages."""
    code, status = "VALIDATION_ERROR", 400


class Unauthorized(DomainError):
    code, status = "UNAUTHORIZED", 401


class Forbidden(DomainError):
    code, status = "FORBIDDEN", 403


class NotFound(DomainError):
    code, status = "NOT_FOUND", 404

    @classmethod
    def of(cls, kind: str, ident) -> "NotFound":
        return cls(f"{kind} '{ident}' not found")


class Conflict(DomainError):
    code, status = "CONFLICT", 409


class QuotaExceeded(DomainError):
    code, status = "QUOTA_EXCEEDED", 402


class RateLimited(DomainError):
    code, status = "RATE_LIMITED", 429

    def __init__(self, message: str, retry_after: int, details: dict | None = None):
        super().__init__(message, details)
        self.retry_after = retry_after


class NotConfigured(DomainError):
    code, status = "NOT_CONFIGURED", 503
