"""AWS credentials read from the same places as every other setting.

botocore reads ``AWS_*`` from the process environment only: keys written in
``.env`` or an ``--env-file`` beside the ``ARCHIVER_*`` settings would be
silently ignored. They are read here with the settings' own rule (the
environment wins over the file; ``--env-file`` is read instead of ``.env``)
and handed to the S3 client. Nothing found: botocore's own chain (shared
credentials file, instance or container role...) decides, as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr

from archiver.errors import ConfigError

KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 (a variable's name)
SESSION_TOKEN = "AWS_SESSION_TOKEN"  # noqa: S105 (a variable's name, not a secret)
PROFILE = "AWS_PROFILE"
REGIONS = ("AWS_REGION", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class AwsCredentials:
    """Keys or a profile for the S3 client, and where they were found (never a secret).

    All None: botocore's default chain.
    """

    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = None
    region: str | None = None
    # Where the keys (or the profile) were read: "the environment" or a file's path.
    where: str | None = None

    @property
    def description(self) -> str | None:
        """Which credentials, from where, naming no secret; None for botocore's own chain."""
        if self.access_key_id is not None:
            return f"{KEY_ID} from {self.where}"
        if self.profile is not None:
            return f"profile {self.profile!r} ({PROFILE} from {self.where})"
        return None


def _places(
    env_file: str | Path | None, environ: Mapping[str, str]
) -> list[tuple[str, dict[str, str]]]:
    """The environment, then the file the settings read (``--env-file``, else ``.env``)."""
    places = [("the environment", {k: v for k, v in environ.items() if k.startswith("AWS_")})]
    path = Path(env_file) if env_file is not None else Path(".env")
    if path.is_file():
        values = {k: v for k, v in dotenv_values(path).items() if v}
        places.append((str(path.absolute()), values))
    return places


def read_aws_credentials(
    env_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> AwsCredentials:
    """The AWS keys, profile and region of the environment and the settings' file.

    Raises ConfigError for a key ID without its secret (or the reverse) in one
    place: taking the other half from elsewhere would pair two accounts' halves.
    """
    places = _places(env_file, os.environ if environ is None else environ)
    region = next((v[name] for _, v in places for name in REGIONS if v.get(name)), None)
    for where, values in places:
        key_id, secret = values.get(KEY_ID), values.get(SECRET)
        if key_id or secret:
            if not (key_id and secret):
                given, missing = (KEY_ID, SECRET) if key_id else (SECRET, KEY_ID)
                raise ConfigError(f"{given} is set in {where} but {missing} is not")
            token = values.get(SESSION_TOKEN)
            return AwsCredentials(
                access_key_id=key_id,
                secret_access_key=SecretStr(secret),
                session_token=SecretStr(token) if token else None,
                region=region,
                where=where,
            )
    for where, values in places:
        if values.get(PROFILE):
            return AwsCredentials(profile=values[PROFILE], region=region, where=where)
    return AwsCredentials(region=region)
