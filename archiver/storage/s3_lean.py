"""The lean PutObject: a body in memory, signed by botocore's SigV4 signer and sent
on the full client's own HTTP session, without the rest of botocore's request path.

Why: a small recording's PutObject spent most of its client CPU in botocore's
request machinery (parameter validation, the event hooks, the endpoint
ruleset, the retry handler, the response parser), not on the wire: see
docs/performance.md, "The hot path's CPU". This path builds the same request
itself: the same URL (resolved once by the client, from a presigned URL), the
same headers (named by the client's own service model and formatted by its
serializer: Content-Type, the metadata, ``If-None-Match``,
``x-amz-checksum-sha256``, Object Lock, encryption, storage class), signed by
``botocore.auth.S3SigV4Auth`` (or its CRT twin, as the client would) with the
client's credentials, region and ``payload_signing_enabled`` setting, and sent
by the client's HTTP session (its pool, TLS settings, proxies and per-attempt
deadlines).

It decides only the two answers it can read without botocore: 200 (written;
the proof read from the headers as :func:`~archiver.storage.s3_proof.proof_from`
reads botocore's) and 412 (the key is taken). Any other answer, and any
failure to send, hands the write to the full client unchanged
(:class:`LeanUnsure`), which retries and reads errors as it always did: a PUT
that reached the server before its answer was lost is then refused by the
conditional write and compared, as a retry of the full client would be.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from botocore.auth import AUTH_TYPE_MAPS
from botocore.awsrequest import AWSRequest
from botocore.serialize import create_serializer

log = logging.getLogger("archiver.storage")

# Above this, botocore would send the body as a file (Expect: 100-continue, read in
# pieces): the full client keeps those (see s3_upload.file_like_when_large).
LEAN_MAX_BODY = 1024 * 1024

# The answer headers :func:`~archiver.storage.s3_proof.proof_from` reads, by its names.
_PROOF_HEADERS = {
    "etag": "ETag",
    "x-amz-version-id": "VersionId",
    "x-amz-checksum-sha256": "ChecksumSHA256",
    "x-amz-checksum-type": "ChecksumType",
}


class LeanUnsure(Exception):
    """The lean PUT could not decide (or not build the request): the full client writes."""


class LeanTaken(Exception):
    """The conditional write was refused (412): the key is taken."""


class LeanPut:
    """PutObject of small bodies for one client; see the module docstring.

    Made by :meth:`open`, which returns None where the lean path does not apply
    (a client without credentials or without the HTTP session this module sends on).
    """

    def __init__(self, client: Any, http_session: Any, base_url: str) -> None:
        self._client = client
        self._http = http_session
        self._base = base_url  # ends with "/": the object URL is base + quoted key
        operation = client.meta.service_model.operation_model("PutObject")
        self._members: Mapping[str, Any] = operation.input_shape.members
        # The client's own header formatting (timestamps, lists), so a header reads
        # exactly as the full client would send it.
        self._serializer = create_serializer("rest-xml", include_validation=False)
        self._region = client.meta.region_name
        self._context = {"client_config": client.meta.config}
        # The signer the full client uses for "s3v4": botocore.auth.S3SigV4Auth, or
        # its CRT twin where botocore's CRT extras (awscrt) are installed.
        self._signer = AUTH_TYPE_MAPS["s3v4"]

    @classmethod
    async def open(cls, client: Any, bucket: str, enabled: bool = True) -> LeanPut | None:
        """The lean path of ``client`` for ``bucket``, or None where it does not apply
        (or is not ``enabled``: ARCHIVER_STORAGE__LEAN_PUT=false)."""
        if not enabled:
            return None
        http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        signer = getattr(client, "_request_signer", None)
        if http is None or signer is None or getattr(signer, "_credentials", None) is None:
            return None
        # The object URL as the client resolves it (addressing style, region,
        # custom endpoint): presigned for a probe key, its query dropped.
        probe = "lean-probe"
        url = await client.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": probe}, ExpiresIn=60
        )
        base = str(url).split("?", 1)[0]
        if not base.endswith("/" + probe):
            return None
        return cls(client, http, base[: -len(probe)])

    def headers_for(self, params: Mapping[str, Any]) -> dict[str, str]:
        """The request headers of PutObject ``params`` (all but Bucket, Key and Body),
        as the client's service model names them; LeanUnsure for a parameter that is
        not a header."""
        headers: dict[str, str] = {}
        for name, value in params.items():
            if name in {"Bucket", "Key", "Body"} or value is None:
                continue
            shape: Any = self._members.get(name)
            where = shape.serialization.get("location") if shape is not None else None
            if where == "headers":  # Metadata: x-amz-meta-<key>
                prefix = shape.serialization.get("name", "")
                for key, item in value.items():
                    headers[f"{prefix}{key}"] = str(item)
            elif where == "header":
                headers[shape.serialization["name"]] = self._header(shape, value)
            else:
                raise LeanUnsure(f"PutObject parameter {name} is not a header")
        return headers

    def _header(self, shape: Any, value: Any) -> str:
        if isinstance(value, _dt.datetime) or shape.type_name != "string":
            converted: Any = self._serializer._convert_header_value(shape, value)
            return str(converted)
        return str(value)

    async def put(self, key: str, body: bytes, params: Mapping[str, Any]) -> dict[str, str] | None:
        """PUT ``body`` at the bucket key ``key`` with the headers of ``params``: the
        proof headers of a 200, under botocore's names; LeanTaken on 412; None on
        anything else, and for a body over LEAN_MAX_BODY (nothing concluded: the full
        client must make the write)."""
        if len(body) > LEAN_MAX_BODY:
            return None
        try:
            return await self._put(key, body, params)
        except LeanUnsure as exc:
            log.debug("lean PutObject of %s undecided (%s): the full client writes it", key, exc)
            return None

    async def _put(self, key: str, body: bytes, params: Mapping[str, Any]) -> dict[str, str]:
        headers = self.headers_for(params)
        url = self._base + quote(key, safe="/~")
        headers["Content-Length"] = str(len(body))
        # No Host header of our own, as the full client sets none: the signer signs the
        # URL's host (botocore's _host_from_url rule) and aiohttp sends the same value.
        request = AWSRequest(method="PUT", url=url, headers=headers, data=body)
        request.context.update(self._context)
        credentials = await self._client._request_signer._credentials.get_frozen_credentials()
        self._signer(credentials, "s3", self._region).add_auth(request)
        try:
            response = await self._http.send(request.prepare())
        except Exception as exc:  # any failure to send: the full client decides
            raise LeanUnsure(f"{type(exc).__name__}: {exc}") from exc
        try:
            await response.content  # read to the end: the connection goes back to the pool
        except Exception as exc:
            raise LeanUnsure(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 412:
            raise LeanTaken(key)
        if response.status_code != 200:
            raise LeanUnsure(f"HTTP {response.status_code}")
        answer = {k.lower(): v for k, v in response.headers.items()}
        return {name: answer[h] for h, name in _PROOF_HEADERS.items() if h in answer}
