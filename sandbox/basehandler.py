"""What every sandbox request handler shares: JSON answers, JSON errors, no per-request extras."""

from __future__ import annotations

from http.client import responses
from typing import Any

from tornado.web import RequestHandler

from sandbox.operations import Reply
from sandbox.state import SandboxState


class ApiHandler(RequestHandler):
    """Base for the sandbox's handlers; routes pass the shared :class:`SandboxState` as ``state``."""

    def initialize(self, state: SandboxState) -> None:  # tornado's hook for route arguments
        self.state = state

    def compute_etag(self) -> str | None:
        return None  # hashing every body buys nothing here

    def send_reply(self, reply: Reply) -> None:
        """Write ``reply`` and finish; every answer carries a JSON content type, even an empty 200."""
        self.set_status(reply.status)
        self.set_header("Content-Type", "application/json")
        if reply.error_type:
            self.set_header("x-amzn-ErrorType", reply.error_type)
        self.finish(reply.body())

    def send_json(self, payload: dict[str, Any], status: int = 200) -> None:
        """Answer with ``payload`` as JSON."""
        self.send_reply(Reply(status, payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # An unhandled exception is the sandbox's own bug; answer the API's 500 shape, not tornado's HTML page.
        self.set_header("Content-Type", "application/json")
        self.finish({"errorMsg": "ServiceException" if status_code >= 500 else responses.get(status_code, "Error")})


class NotFoundHandler(ApiHandler):
    """Any other path: a JSON 404 rather than tornado's HTML page."""

    def prepare(self) -> None:
        self.send_json({"errorMsg": f"NotFoundException: no route for {self.request.method} {self.request.path}"}, 404)
