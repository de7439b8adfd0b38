"""A store backend's webhook receiver, for the demo: what payq's outcome notifications look like when they land.

``POST /admin/notifications`` takes a delivery, checks its Standard Webhooks
signature when the sandbox knows the secret (``--notify-secret``), and keeps
it; ``GET /admin/notifications`` lists what arrived. A real receiver does
what this one does: verify, then answer 2xx at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Delivery:
    """One notification as it arrived; ``signature_valid`` is None when the sandbox has no secret to check it with."""

    webhook_id: str
    event: Any
    received_at: float
    signature_valid: bool | None

    def to_json(self) -> dict[str, Any]:
        """As ``GET /admin/notifications`` shows it."""
        return {"webhookId": self.webhook_id, "event": self.event, "receivedAt": self.received_at, "signatureValid": self.signature_valid}


@dataclass
class Inbox:
    """The deliveries received, oldest first; duplicates (the same ``webhook-id``) are kept too, and counted."""

    secret: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)

    def receive(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Delivery:
        """Check and keep one delivery."""
        lowered = {k.lower(): v for k, v in headers.items()}
        valid: bool | None = None
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, lowered)
                valid = True
            except WebhookVerificationError:
                valid = False
        try:
            event = json.loads(body)
        except ValueError:
            event = body.decode("utf-8", "replace")
        delivery = Delivery(lowered.get("webhook-id", ""), event, time.time() if now is None else now, valid)
        self.deliveries.append(delivery)
        return delivery

    def clear(self) -> None:
        """Forget every delivery."""
        self.deliveries.clear()
