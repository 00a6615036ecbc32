"""One error hierarchy for the whole platform.

Services raise these; each API dialect (our JSON, SensorThings, later Open311 and CKAN) has one
handler that renders them in its own format. Routes never build error responses themselves.
"""

from __future__ import annotations

from typing import Any


class CitydeskError(Exception):
    """Base of every error a client may see: carries an HTTP status and a stable code."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers
        """Extra response headers the handler sends, e.g. ``WWW-Authenticate`` on a 401."""


class BadRequest(CitydeskError):
    status = 400
    code = "bad_request"


class InvalidQuery(BadRequest):
    code = "invalid_query"


class ValidationFailed(BadRequest):
    status = 400
    code = "validation_failed"


class Unauthorized(CitydeskError):
    status = 401
    code = "unauthorized"


class Forbidden(CitydeskError):
    status = 403
    code = "forbidden"


class NotFound(CitydeskError):
    status = 404
    code = "not_found"


class Conflict(CitydeskError):
    status = 409
    code = "conflict"


class InvalidTransition(Conflict):
    """A status change the lifecycle's table does not allow (see ``citydesk.workflow``)."""

    code = "invalid_transition"


class UnsupportedMediaType(CitydeskError):
    status = 415
    code = "unsupported_media_type"


class FailedDependency(CitydeskError):
    """A request of a batch that was not run because one it depends on failed (RFC 4918)."""

    status = 424
    code = "failed_dependency"


class NotImplementedFeature(CitydeskError):
    status = 501
    code = "not_implemented"


class ServiceUnavailable(CitydeskError):
    status = 503
    code = "unavailable"


class DatabaseNotMigrated(CitydeskError):
    """The configured database lacks the current schema: run ``citydesk migrate``."""

    status = 503
    code = "database_not_migrated"


class InvalidSetting(CitydeskError):
    """A setting cannot be used as given (an unknown ``BUS_URL`` scheme, a missing optional package)."""

    code = "invalid_setting"


class BusUnavailable(ServiceUnavailable):
    """The event bus named by ``BUS_URL`` does not answer when the server starts."""

    code = "bus_unavailable"
