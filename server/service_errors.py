"""The service's domain errors: plain exceptions that name what went wrong, with no transport.

Each has one gRPC status, given by the table in ``server/grpc/errors.py`` at the API layer; code
below that layer (the recommender, indexing, the stores) raises these without importing grpc.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class of the errors servicers raise on purpose; each subclass has one status code."""


class InvalidArgumentError(ServiceError):
    """A request field is malformed; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ResourceLimitError(ServiceError):
    """A request field is over a configured limit (size, pixels, length, count)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFoundError(ServiceError):
    """The request names an id that is not stored."""


class AlreadyExistsError(ServiceError):
    """The request would create something that exists already."""


class PreconditionError(ServiceError):
    """The system is not in a state to serve this request (e.g. model/collection mismatch)."""


class UnauthenticatedError(ServiceError):
    """The caller sent no valid credentials."""


class UnavailableError(ServiceError):
    """The service cannot serve right now but may later (e.g. still loading, shutting down)."""


class DeadlineExceededError(ServiceError):
    """The caller's deadline passed before the work ran, so it was dropped unrun."""
