"""User-facing errors. The UI shows them with st.error; the CLI prints them; the API maps
them to status codes (``status``)."""

from __future__ import annotations

import math


class EnclaveError(Exception):
    """Base of every error a user may see. ``str(err)`` is the message to show."""

    status = 400


class TenantNotFound(EnclaveError):
    status = 404


class TenantInvalid(EnclaveError):
    """A tenant folder failed validation; the message names the file and the field."""

    status = 500


class TenantUnavailable(EnclaveError):
    """The tenant exists but is not active (suspended, expired, archived)."""

    status = 403


class IdentityRefused(EnclaveError):
    """The login could not be bound to exactly one tenant, or was incomplete or expired."""

    status = 401


class AccessDenied(EnclaveError):
    status = 403


class NotFound(EnclaveError):
    status = 404


class QuotaExceeded(EnclaveError):
    """A limit refused the turn. ``limit`` names it (e.g. ``"requests_per_minute"``),
    ``retry_after`` is in seconds, when known."""

    status = 429

    def __init__(self, message: str, retry_after: float | None = None,
                 limit: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers of the 429 answer: ``Retry-After`` in whole seconds, when known."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class QuotaUnavailable(EnclaveError):
    """The limits store cannot be reached and the tenant fails closed."""

    status = 503


class UploadRejected(EnclaveError):
    status = 422


class ModelUnavailable(EnclaveError):
    """The model endpoint is down, slow, rate limited or failing."""

    status = 502


class BadInput(EnclaveError):
    status = 400


class KeyUnavailable(EnclaveError):
    """A master or tenant data key is missing, malformed or does not unwrap."""

    status = 500
