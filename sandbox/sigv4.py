"""The sandbox's SigV4 check: recompute each request's signature with botocore and compare.

Used as the server's ``verifier`` hook (``payq sandbox --require-sigv4``). The
signature is recomputed from what arrived: the method, the path, the headers
the Authorization header lists as signed, the body, and the request's own
X-Amz-Date, with botocore's ``SigV4Auth`` (the algorithm is never written
here). A refusal is a message naming the problem, answered 403.

What it does not do, unlike AWS: it accepts any ``X-Amz-Security-Token``
(present or not, it is not validated); it knows one access key; the
canonical query string is taken from nothing (the API's endpoints take no
query parameters, so a request with one fails as a wrong signature); a
header botocore never signs (User-Agent, Expect, ...) cannot be listed as
signed.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_CLOCK_SKEW_SECONDS = 300.0  # AWS's window: a request signed more than 5 minutes from now is refused
_ALGORITHM = "AWS4-HMAC-SHA256"
_INCOMPLETE = "IncompleteSignatureException"
_INVALID = "InvalidSignatureException"


class SigV4Verifier:
    """Checks requests signed for ``access_key``/``secret_key``; call it as the sandbox's ``verifier``.

    ``region`` None accepts whichever region the credential scope names (the
    signature still covers it); ``clock`` is the sandbox's wall clock, for
    the skew check.
    """

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        region: str | None = None,
        service: str = "execute-api",
        clock: Callable[[], float] = time.time,
        max_skew: float = MAX_CLOCK_SKEW_SECONDS,
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("SigV4 verification needs an access key and a secret key")
        self.access_key = access_key
        self._secret_key = secret_key
        self.region = region
        self.service = service
        self._clock = clock
        self._max_skew = max_skew

    def __repr__(self) -> str:
        return f"SigV4Verifier(access_key={self.access_key!r}, region={self.region!r}, service={self.service!r})"

    def __call__(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """None if the request is correctly signed, else why not (the 403's ``errorMsg``)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        authorization = lowered.get("authorization")
        if not authorization:
            return f"{_INCOMPLETE}: missing Authorization header"
        amz_date = lowered.get("x-amz-date")
        if not amz_date:
            return f"{_INCOMPLETE}: missing X-Amz-Date header"
        parsed = _parse_authorization(authorization)
        if isinstance(parsed, str):
            return f"{_INCOMPLETE}: {parsed}"
        credential, signed_headers, signature = parsed
        try:
            signed_at = calendar.timegm(time.strptime(amz_date, SIGV4_TIMESTAMP))
        except ValueError:
            return f"{_INCOMPLETE}: X-Amz-Date {amz_date!r} is not in the form 20240131T235959Z"
        now = self._clock()
        if abs(now - signed_at) > self._max_skew:
            return (
                f"{_INVALID}: signature expired: clock skew of {abs(now - signed_at):.0f} s between X-Amz-Date {amz_date} "
                f"and the sandbox's clock {time.strftime(SIGV4_TIMESTAMP, time.gmtime(now))} is over {self._max_skew:g} s"
            )
        scope_problem = self._check_scope(credential, amz_date)
        if scope_problem:
            return scope_problem
        missing = [h for h in signed_headers if h not in lowered]
        if missing:
            return f"{_INCOMPLETE}: signed header(s) {', '.join(missing)} not in the request"
        for required in ("host", "x-amz-date"):
            if required not in signed_headers:
                return f"{_INCOMPLETE}: the {required} header must be signed"
        claimed_hash = lowered.get("x-amz-content-sha256")
        if "x-amz-content-sha256" in signed_headers and claimed_hash != hashlib.sha256(body).hexdigest():
            # botocore trusts this header as the body's hash: check it, or a changed body would pass
            return f"{_INVALID}: x-amz-content-sha256 does not match the body"
        expected = self._signature(method, path, {h: lowered[h] for h in signed_headers}, body, amz_date, credential[2])
        if not hmac.compare_digest(expected, signature):
            return (
                f"{_INVALID}: wrong signature: the signature we calculated does not match the one sent "
                "(check the secret access key, and that nothing changed the request after signing)"
            )
        return None

    def _check_scope(self, credential: list[str], amz_date: str) -> str | None:
        access_key, date, region, service, terminator = credential
        if access_key != self.access_key:
            return "UnrecognizedClientException: unknown access key: not the one this sandbox was started with"
        if date != amz_date[:8]:
            return f"{_INVALID}: credential scope date {date} is not the date of X-Amz-Date {amz_date}"
        if self.region is not None and region != self.region:
            return f"{_INVALID}: credential scope region {region!r} should be {self.region!r}"
        if service != self.service:
            return f"{_INVALID}: credential scope service {service!r} should be {self.service!r}"
        if terminator != "aws4_request":
            return f"{_INVALID}: credential scope must end in aws4_request"
        return None

    def _signature(self, method: str, path: str, signed: dict[str, str], body: bytes, amz_date: str, region: str) -> str:
        """The hex signature botocore computes for this request, signed at ``amz_date``."""
        request = AWSRequest(method=method, url=f"http://{signed['host']}{path}", data=body)
        for name, value in signed.items():
            request.headers[name] = value
        # Normally add_auth stamps the current time; a verifier needs the time the client signed at.
        request.context["timestamp"] = amz_date
        auth = SigV4Auth(Credentials(self.access_key, self._secret_key), self.service, region)
        canonical = auth.canonical_request(request)
        signature: str = auth.signature(auth.string_to_sign(request, canonical), request)
        return signature


def _parse_authorization(value: str) -> tuple[list[str], list[str], str] | str:
    """(credential scope parts, signed header names, signature), or what is wrong with the header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != _ALGORITHM:
        return f"Authorization header must start with {_ALGORITHM}"
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val.strip()
    absent = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if absent:
        return f"Authorization header has no {', '.join(absent)}"
    credential = fields["Credential"].split("/")
    if len(credential) != 5:
        return "Authorization Credential must be access-key/date/region/service/aws4_request"
    return credential, fields["SignedHeaders"].lower().split(";"), fields["Signature"]
