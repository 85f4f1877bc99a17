"""``archiver init-storage`` on S3: the bucket as the archiver wants it.

Each step first reads what is there and changes only what differs, so a second
run changes nothing and an existing bucket keeps its other settings:

- the bucket, created with Object Lock when a lock mode is set (its region
  from the settings or the AWS variables);
- versioning enabled (every Object Lock bucket has it; without Object Lock it
  is what makes an overwritten or deleted object recoverable);
- Object Lock enabled on an existing bucket when a lock mode is set (S3 and
  SeaweedFS accept it on a versioned bucket). No *bucket default* retention is
  set: the archiver locks each piece of evidence itself for
  ``retention_days``, and a default would also lock its working objects
  (running markers renewed every few seconds, ``check`` objects), whose old
  versions would then pile up, undeletable, for the whole retention;
- a lifecycle rule expiring the old versions and lone delete markers under
  ``_archiver/running/`` (the markers are deleted as runs stop), added beside
  the bucket's other rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from archiver.errors import StorageError
from archiver.settings import ENV_PREFIX, StorageSettings
from archiver.storage.s3_errors import error_code, http_status

if TYPE_CHECKING:
    from archiver.storage.s3 import S3Store

RUNNING_RULE_ID = "archiver-running-markers"
RUNNING_AREA = "_archiver/running/"
_NO_LIFECYCLE = frozenset({"NoSuchLifecycleConfiguration"})


async def prepare_bucket(store: S3Store, settings: StorageSettings) -> list[str]:
    """Create or complete the bucket; one line per step, saying what was done or found."""
    client, bucket = store.client, store.bucket
    lines = [await _bucket(store, settings)]
    with store.errors("set up versioning"):
        status = (await client.get_bucket_versioning(Bucket=bucket)).get("Status")
        if status == "Enabled":
            lines.append("versioning: already enabled")
        else:
            await client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
            lines.append(f"versioning: enabled (was {str(status or 'never enabled').lower()})")
    lines.append(await _object_lock(store, settings))
    lines.append(await _lifecycle(store))
    return lines


async def _bucket(store: S3Store, settings: StorageSettings) -> str:
    client, bucket = store.client, store.bucket
    with store.errors("reach the bucket"):
        try:
            await client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if http_status(exc) != 404 and error_code(exc) != "NoSuchBucket":
                raise
        else:
            return f"bucket: {bucket} exists"
    params: dict[str, Any] = {"Bucket": bucket}
    if settings.object_lock_mode is not None:
        params["ObjectLockEnabledForBucket"] = True
    region = client.meta.region_name
    if region and region != "us-east-1":  # us-east-1 refuses its own name as a constraint
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with store.errors("create the bucket"):
        await client.create_bucket(**params)
    locked = " with Object Lock" if settings.object_lock_mode is not None else ""
    return f"bucket: {bucket} created{locked}"


async def _object_lock(store: S3Store, settings: StorageSettings) -> str:
    mode = settings.object_lock_mode
    protection = await store.bucket_protection()
    default = ""
    if protection.default_mode:
        default = (
            f"; note: the bucket's default retention ({protection.default_mode}) also locks "
            "the archiver's working objects, whose old versions then stay for as long"
        )
    if mode is None:
        state = "enabled" if protection.object_lock else "not enabled"
        return (
            f"object lock: {state} on the bucket; nothing locked by the archiver "
            f"({ENV_PREFIX}STORAGE__OBJECT_LOCK_MODE is not set){default}"
        )
    done = "already enabled"
    if not protection.object_lock:
        with store.errors("enable Object Lock"):
            await store.client.put_object_lock_configuration(
                Bucket=store.bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
            )
        if not (await store.bucket_protection()).object_lock:
            raise StorageError(f"{store.description}: the storage did not enable Object Lock")
        done = "enabled"
    return (
        f"object lock: {done}; recordings, manifests and audit records are locked {mode} "
        f"for {settings.retention_days} days from their write{default}"
    )


async def _lifecycle(store: S3Store) -> str:
    client, bucket = store.client, store.bucket
    prefix = store.prefix + RUNNING_AREA
    ours = {
        "ID": RUNNING_RULE_ID,
        "Filter": {"Prefix": prefix},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        "Expiration": {"ExpiredObjectDeleteMarker": True},
    }
    with store.errors("set up the lifecycle rule"):
        try:
            rules = (await client.get_bucket_lifecycle_configuration(Bucket=bucket))["Rules"]
        except ClientError as exc:
            if error_code(exc) not in _NO_LIFECYCLE:
                raise
            rules = []
        mine = [rule for rule in rules if rule.get("ID") == RUNNING_RULE_ID]
        if mine and (mine[0].get("Filter") or {}).get("Prefix") == prefix:
            return f"lifecycle: rule {RUNNING_RULE_ID!r} already there ({prefix})"
        others = [rule for rule in rules if rule.get("ID") != RUNNING_RULE_ID]
        await client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [*others, ours]}
        )
    return (
        f"lifecycle: rule {RUNNING_RULE_ID!r} added: old versions of the running markers "
        f"under {prefix} expire after a day"
    )
