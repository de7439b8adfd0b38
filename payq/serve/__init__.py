"""``payq serve``: payq over HTTP, for store backends in any language and for operators in a browser.

``app`` builds the ASGI application (FastAPI on uvicorn; its pydantic models give
the OpenAPI document at ``/openapi.json``) and holds what every request shares:
the settings and one asynchronous Redis client, so the event loop never waits
on Redis. ``intake`` is the store backends' API (``/v1/...``, per-store bearer
tokens); ``console`` the operators' pages (``/console/``, basic auth, apart
from the tokens); ``command`` the ``payq serve`` and ``payq token`` commands.
"""
