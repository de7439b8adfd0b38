"""The operators' console at ``/console/``: dead letters and trips in a browser, beside Flower."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console", include_in_schema=False)
