"""How the S3 client is made: its configuration, its credentials, its request bodies.

Opened once per store (:class:`~archiver.storage.s3.S3Store`), on the store's
exit stack, so it closes with the store.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.session import get_session
from botocore.handlers import convert_body_to_file_like_object

from archiver.settings import StorageSettings
from archiver.storage.s3_config import client_config
from archiver.storage.s3_credentials import client_credentials, credentials_source
from archiver.storage.s3_proof import parse_timestamp
from archiver.storage.s3_upload import file_like_when_large


async def open_client(
    settings: StorageSettings,
    stack: AsyncExitStack,
    *,
    max_attempts: int,
    max_connections: int,
) -> tuple[Any, str | None]:
    """The aiobotocore S3 client for ``settings`` (closed with ``stack``), and where its
    credentials came from (naming no secret). BotoCoreError for a client that cannot
    be made (a profile that does not exist...)."""
    config = client_config(settings, max_attempts=max_attempts, max_connections=max_connections)
    session = get_session()
    # Listing timestamps parsed by date, not by dateutil's slower general parser.
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    aws = settings.aws
    client = await stack.enter_async_context(
        session.create_client(
            "s3",
            region_name=settings.region or aws.region,
            endpoint_url=settings.endpoint_url,
            # None keeps botocore's default, which honours AWS_CA_BUNDLE.
            verify=None if settings.verify_tls else False,
            config=config,
            **client_credentials(session, aws),
        )
    )
    # Small bodies go to aiohttp as the bytes given, not wrapped in a file object.
    for operation in ("PutObject", "UploadPart"):
        event = f"before-parameter-build.s3.{operation}"
        client.meta.events.unregister(event, convert_body_to_file_like_object)
        client.meta.events.register(event, file_like_when_large)
    return client, await credentials_source(session, aws)
