"""``/admin/...``: how tests and demos drive the sandbox — register trips, set faults, read what happened.

Admin requests are not written to the request log, so the log shows only what
the client under test sent.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from payapi.models import StoreId, TripId, describe
from sandbox.basehandler import ApiHandler
from sandbox.faults import FaultScriptError, parse_script
from sandbox.ratelimit import limits_to_json
from sandbox.state import SandboxState


class TripRegistration(BaseModel):
    """One trip to make known; ``tripTime`` (epoch seconds) defaults to now and may lie in the past."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    storeId: StoreId
    shoppingTripId: TripId
    tripTime: float | None = Field(None, allow_inf_nan=False)


class TripsHandler(ApiHandler):
    """``POST /admin/trips``: one registration object or a list of them → ``{"registered": n}``."""

    def post(self) -> None:
        try:
            data = json.loads(self.request.body)
        except ValueError as exc:
            self.send_json({"errorMsg": f"BadRequestException: (body): must be valid JSON ({exc})"}, 400)
            return
        items = data if isinstance(data, list) else [data]
        try:
            trips = [TripRegistration.model_validate(item) for item in items]
        except ValidationError as exc:
            problems = "; ".join(str(p) for p in describe(exc))
            self.send_json({"errorMsg": f"BadRequestException: {problems}"}, 400)
            return
        for trip in trips:
            self.state.ledger.register(trip.storeId, trip.shoppingTripId, trip.tripTime)
        self.send_json({"registered": len(trips)})


class FaultsHandler(ApiHandler):
    """``POST /admin/faults``: replace the fault script → ``{"rules": n, "rate_limits": {the limits now in force}}``.

    A script with ``rate_limits`` replaces the configured limits until the
    next script or reset; a script without them puts the configured ones back.
    """

    def post(self) -> None:
        try:
            script = parse_script(json.loads(self.request.body), clock=self.state.fault_clock)
        except ValueError as exc:  # FaultScriptError and JSONDecodeError alike
            kind = "invalid fault script" if isinstance(exc, FaultScriptError) else "fault script is not valid JSON"
            self.send_json({"errorMsg": f"{kind}: {exc}"}, 400)
            return
        self.state.set_faults(script)
        self.send_json({"rules": len(script.rules), "rate_limits": limits_to_json(self.state.limiter.limits)})


class RateLimitsHandler(ApiHandler):
    """``GET /admin/rate-limits``: ``{"rate_limits": {in force}, "configured": {from --rate-limit, restored by reset}}``."""

    def get(self) -> None:
        self.send_json({
            "rate_limits": limits_to_json(self.state.limiter.limits),
            "configured": limits_to_json(self.state.rate_limits),
        })


class RequestsHandler(ApiHandler):
    """``GET /admin/requests[?path=...&since=<epoch>]``: the request log, oldest first."""

    def get(self) -> None:
        path = self.get_query_argument("path", None)
        since_text = self.get_query_argument("since", None)
        since: float | None = None
        if since_text is not None:
            try:
                since = float(since_text)
            except ValueError:
                since = math.nan
            if not math.isfinite(since):
                self.send_json({"errorMsg": f"since must be epoch seconds, got {since_text!r}"}, 400)
                return
        entries = self.state.log.entries(path=path, since=since)
        self.send_json({"requests": [e.to_json() for e in entries]})


class LedgerHandler(ApiHandler):
    """``GET /admin/ledger``: every trip with its capture, cancel, refunds and reports; amounts as strings."""

    def get(self) -> None:
        self.send_json({"trips": [t.to_json() for t in self.state.ledger.trips()]})


class ResetHandler(ApiHandler):
    """``POST /admin/reset``: clear the ledger, the fault script and the request log; the configured rate limits return."""

    def post(self) -> None:
        self.state.reset()
        self.send_json({"reset": True})


class NotificationsHandler(ApiHandler):
    """``POST /admin/notifications``: receive one of payq's outcome notifications (204); ``GET``: every one received."""

    def post(self) -> None:
        self.state.inbox.receive(self.request.headers, self.request.body)
        self.set_status(204)
        self.finish()

    def get(self) -> None:
        self.send_json({"notifications": [d.to_json() for d in self.state.inbox.deliveries]})


class HealthHandler(ApiHandler):
    """``GET /admin/health``: 200 ``{"ok": true}`` once serving."""

    def get(self) -> None:
        self.send_json({"ok": True})


def routes(state: SandboxState) -> list[tuple[str, type[ApiHandler], dict[str, Any]]]:
    """The admin routes, each bound to ``state``."""
    bound = {"state": state}
    return [
        ("/admin/trips", TripsHandler, bound),
        ("/admin/faults", FaultsHandler, bound),
        ("/admin/rate-limits", RateLimitsHandler, bound),
        ("/admin/requests", RequestsHandler, bound),
        ("/admin/ledger", LedgerHandler, bound),
        ("/admin/reset", ResetHandler, bound),
        ("/admin/notifications", NotificationsHandler, bound),
        ("/admin/health", HealthHandler, bound),
    ]
