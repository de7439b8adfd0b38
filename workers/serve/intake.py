"""The store backends' HTTP API: ``/v1/jobs``, ``/v1/jobs/batch``, ``/v1/jobs/{jobId}``, ``/v1/trips/{storeId}/{shoppingTripId}``."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["intake"])
