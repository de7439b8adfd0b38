"""AWS Signature Version 4 for payment API requests, by botocore (never by hand).

:func:`build_signer` resolves credentials through botocore's standard chain
(environment, shared config and credentials files and profiles, container and
instance roles, assume-role) once, when a worker process starts; the
:class:`SigV4Signer` it returns asks them for a frozen copy on every request,
so refreshable credentials are renewed by botocore before they expire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from config.settings import Settings
from payapi.client import Prepared
from payapi.errors import ConfigurationError

# The headers botocore may add while signing; each is copied onto the request that is sent.
_AUTH_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256")
_NO_CREDENTIALS = (
    "PAYQ_API_AUTH=sigv4 but no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(and AWS_SESSION_TOKEN for temporary credentials), name a profile with PAYQ_AWS_PROFILE, "
    "or run with a container or instance role"
)


class SigV4Signer:
    """Signs a prepared request in place; one per worker process, shared by its threads.

    ``credentials`` is a botocore credentials object, kept unfrozen: a
    refreshable one renews itself inside ``get_frozen_credentials`` when it
    nears expiry, and a frozen copy per request keeps access key, secret and
    token from different generations apart.
    """

    def __init__(self, credentials: Credentials, region: str, service: str) -> None:
        self._credentials = credentials
        self.region = region
        self.service = service

    def __call__(self, prepared: Prepared) -> None:
        """Add Authorization, X-Amz-Date and (for temporary credentials) X-Amz-Security-Token to ``prepared``.

        The signature covers ``prepared``'s body exactly as it will be sent, so
        the body must not change afterwards (the sandbox and the API refuse it).
        """
        try:
            frozen = self._credentials.get_frozen_credentials()
        except (BotoCoreError, ClientError, RuntimeError) as exc:
            # botocore raises RuntimeError for credentials that are still expired after a refresh
            raise ConfigurationError(f"AWS credentials could not be refreshed for SigV4 signing: {_describe(exc)}") from None
        aws = AWSRequest(method=prepared.method, url=prepared.url, headers=dict(prepared.headers), data=prepared.body)
        SigV4Auth(frozen, self.service, self.region).add_auth(aws)
        for name in _AUTH_HEADERS:
            if name in aws.headers:
                prepared.headers[name] = aws.headers[name]
            else:
                prepared.headers.pop(name, None)  # e.g. a token left from a signing with other credentials

    def __repr__(self) -> str:
        # never the credentials: a signer may end up in a log line or a traceback's locals
        return f"SigV4Signer(region={self.region!r}, service={self.service!r})"


def build_signer(settings: Settings, *, session: botocore.session.Session | None = None) -> SigV4Signer:
    """Resolve AWS credentials now and return a signer for ``settings``' region and service.

    Raises :class:`ConfigurationError`, naming what is missing, if no
    credentials are found, the profile does not exist, or the credentials
    are expired and cannot be refreshed. ``session`` is for tests.
    """
    if settings.aws_region is None:
        raise ConfigurationError("PAYQ_AWS_REGION is required when PAYQ_API_AUTH=sigv4")
    # botocore's DEBUG output holds canonical requests (with the session token)
    # and STS answers (with secrets): whatever the worker's log level, keep it out.
    logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLogger("botocore").level))
    try:
        if session is None:
            session = botocore.session.Session(profile=settings.aws_profile)
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError(_NO_CREDENTIALS)
        # Freezing here refreshes expired temporary credentials, or fails now rather than on the first job.
        frozen = credentials.get_frozen_credentials()
    except (BotoCoreError, ClientError, RuntimeError) as exc:
        raise ConfigurationError(f"PAYQ_API_AUTH=sigv4 but AWS credentials could not be loaded: {_describe(exc)}") from None
    missing = [name for name, value in (("access key id", frozen.access_key), ("secret access key", frozen.secret_key)) if not value]
    if missing:
        raise ConfigurationError(f"PAYQ_API_AUTH=sigv4 but the AWS credentials found have no {' and no '.join(missing)}")
    return SigV4Signer(credentials, settings.aws_region, settings.aws_service)


def signer_factory(settings: Settings) -> Callable[[], SigV4Signer] | None:
    """What a worker process calls once to get its signer, or None when ``api_auth`` is ``none``."""
    return partial(build_signer, settings) if settings.api_auth == "sigv4" else None


def _describe(exc: BaseException) -> str:
    # botocore's messages name the provider and the missing variable or profile, never a secret
    return f"{type(exc).__name__}: {exc}"
