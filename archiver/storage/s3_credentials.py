"""The S3 client's credentials: those read with the settings, else botocore's own chain."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError

from archiver.settings import AwsCredentials


def client_credentials(session: Any, aws: AwsCredentials) -> dict[str, str]:
    """``create_client`` keyword arguments for ``aws`` (a profile is set on ``session``)."""
    if aws.profile is not None:
        session.set_config_variable("profile", aws.profile)
    if aws.access_key_id is None or aws.secret_access_key is None:
        return {}
    keys = {
        "aws_access_key_id": aws.access_key_id,
        "aws_secret_access_key": aws.secret_access_key.get_secret_value(),
    }
    if aws.session_token is not None:
        keys["aws_session_token"] = aws.session_token.get_secret_value()
    return keys


async def credentials_source(session: Any, aws: AwsCredentials) -> str | None:
    """Which credentials the client signs with and from where, naming no secret;
    None when there are none."""
    if aws.description is not None:
        return aws.description
    try:
        credentials = await session.get_credentials()
    except BotoCoreError:
        return None
    method = getattr(credentials, "method", None)
    # botocore names how it found them: env, shared-credentials-file, iam-role...
    return f"botocore's default chain ({method})" if method else None
