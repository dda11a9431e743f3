"""Domain errors with stable codes; the API maps each kind to an HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no. ``code`` is stable and documented; ``message`` is for people."""

    code: str = "DOMAIN_ERROR"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class InvalidCommand(DomainError):
    """The command is well-formed but breaks a rule about its content."""

    code = "INVALID_COMMAND"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    """The command clashes with the current state (already exists, wrong status, ...)."""

    code = "CONFLICT"


class Forbidden(DomainError):
    """The caller is known but may not do this (a wrong current password, for instance)."""

    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    """The credentials given do not identify anyone."""

    code = "UNAUTHENTICATED"


class RateLimited(DomainError):
    """Too many requests of one kind from one caller in the current window; retry after ``retry_after_s``."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_s: int, details: dict[str, Any] | None = None):
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s
