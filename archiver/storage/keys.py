"""Object-key layout: a template filled with sanitized values from a call (pure).

The template (``ARCHIVER_STORAGE__KEY_TEMPLATE``) names its values with
placeholders; :data:`PLACEHOLDERS` lists them. Every value goes through
:func:`sanitize`, so whatever a provider puts into a ``sip_call_id`` stays
inside one path segment: it can add no folder, climb out of none, and never
lands under the archiver's own areas (``manifests/``, ``_archiver/``).
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from archiver.errors import BadRecordError
from archiver.models import CallRecord, Provider

PLACEHOLDERS: frozenset[str] = frozenset(
    {"yyyy", "mm", "dd", "hh", "sip_call_id", "cdr_id", "provider", "ext", "direction", "extension"}
)
# First key segments the archiver keeps for itself; no recording may land there.
RESERVED_TOP_LEVEL: frozenset[str] = frozenset({"manifests", "_archiver"})

# Characters that mean the same thing to every filesystem, shell, URL and S3
# tool: keys built from them need no quoting anywhere and no Unicode
# normalization can change them (HFS+ rewrites names to NFD, for instance).
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._@+=-]+")
_HASH_LEN = 12
_UNKNOWN = "unknown"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]


def sanitize(value: str, max_len: int = 128) -> str:
    """Turn any string into one safe path segment of at most ``max_len`` characters.

    The rule:

    1. Unicode is normalized to NFC and surrounding whitespace is stripped
       (``"abc "`` and ``"abc"`` are the same id written twice).
    2. Every run of characters outside ``[A-Za-z0-9._@+=-]`` (``/``, ``\\``,
       spaces, control characters, NUL, non-ASCII letters...) becomes one ``_``.
    3. Leading dots become ``_``: no hidden names, no ``.`` or ``..`` segment.
    4. If step 2 or 3 changed anything, or the result is longer than
       ``max_len``, the result is cut and ``-`` plus 12 hex digits of the
       SHA-256 of the stripped NFC value are appended, so two distinct ids
       (``a/b`` and ``a:b``, or two long ids sharing a prefix) keep distinct
       segments. A value that is already safe is returned unchanged.
    5. An empty value becomes ``_``.
    """
    if max_len < _HASH_LEN + 2:
        raise ValueError(f"max_len must be at least {_HASH_LEN + 2}")
    original = unicodedata.normalize("NFC", value).strip()
    if not original:
        return "_"
    safe = _UNSAFE_RUN.sub("_", original)
    stripped = safe.lstrip(".")
    if stripped != safe:
        safe = "_" + stripped
    if safe == original and len(safe) <= max_len:
        return safe
    suffix = "-" + _digest(original)
    return safe[: max_len - len(suffix)] + suffix


def _fields(template: str) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pairs; ValueError on bad syntax."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"key template {template!r}: {exc}") from None
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                shown = "{" + name + "}"
                raise ValueError(
                    f"key template {template!r}: unknown placeholder {shown}; known: {known}"
                )
            if spec or conversion:
                raise ValueError(
                    f"key template {template!r}: {{{name}}} takes no format spec or conversion"
                )
        out.append((literal, name))
    return out


def validate_key(key: str) -> None:
    """ValueError unless ``key`` is a storage key that stays inside the storage root.

    That is: ``/``-separated, not absolute, with no empty, ``.`` or ``..``
    segment and no backslash, NUL or other control character. Both stores
    apply it, so a key that works on one works on the other.
    """
    if not key or key.startswith("/"):
        raise ValueError(f"invalid storage key {key!r}: empty or absolute")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or "\\" in segment or _has_control(segment):
            raise ValueError(f"invalid storage key {key!r}: it could escape the storage root")


# Unicode's "Cc" category is exactly C0, DEL and C1: one compiled pattern checks a
# key per recording instead of a unicodedata lookup per character (the hot path).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _check_key(key: str, *, what: str) -> None:
    """ValueError unless ``key`` is a relative path of safe, non-hidden segments."""
    if key.startswith("/"):
        raise ValueError(f"{what}: must not start with '/'")
    for segment in key.split("/"):
        if not segment:
            raise ValueError(f"{what}: empty path segment (leading, trailing or double '/')")
        if segment.startswith("."):
            raise ValueError(f"{what}: path segment {segment!r} starts with '.'")
        if "\\" in segment or _has_control(segment):
            raise ValueError(f"{what}: path segment {segment!r} has a backslash or control char")


def validate_template(template: str) -> None:
    """Raise ValueError, with a message naming the problem, if ``template`` cannot work.

    A template needs ``{sip_call_id}`` or ``{cdr_id}`` (or every call would get
    the same key) and ``{ext}`` (the key's extension names the audio type); it
    must render to a relative path outside ``manifests/`` and ``_archiver/``.
    """
    names = {name for _, name in _fields(template) if name is not None}
    if not names & {"sip_call_id", "cdr_id"}:
        raise ValueError(
            f"key template {template!r}: needs {{sip_call_id}} or {{cdr_id}}, "
            "or every recording would get the same key"
        )
    if "ext" not in names:
        raise ValueError(f"key template {template!r}: needs {{ext}} (the audio file type)")
    sample = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="cdr",
        sip_call_id="call",
        started_at=datetime(2021, 2, 17, 17, 30, tzinfo=UTC),
    )
    try:
        render_key(template, sample, "wav", ZoneInfo("UTC"))
    except BadRecordError as exc:
        raise ValueError(f"key template {template!r}: {exc}") from None


def _values(call: CallRecord, ext: str, tz: ZoneInfo) -> dict[str, str]:
    if call.started_at.tzinfo is None:
        raise ValueError("call.started_at must be timezone-aware")
    local = call.started_at.astimezone(tz)
    return {
        "yyyy": f"{local.year:04d}",
        "mm": f"{local.month:02d}",
        "dd": f"{local.day:02d}",
        "hh": f"{local.hour:02d}",
        "sip_call_id": sanitize(call.sip_call_id),
        "cdr_id": sanitize(call.cdr_id),
        "provider": sanitize(call.provider.value),
        "ext": sanitize(ext, max_len=16),
        "direction": sanitize(call.direction.value if call.direction else _UNKNOWN),
        "extension": sanitize(call.extension or _UNKNOWN),
    }


def names_cdr(template: str) -> bool:
    """Whether ``template`` puts the cdr id into every key (so no two CDRs share one)."""
    return any(name == "cdr_id" for _, name in _fields(template))


def sibling_key(key: str, call: CallRecord, ext: str) -> str:
    """The key of a call whose sip_call_id's key another CDR's recording holds.

    A transferred call leaves two CDRs (two recordings) with one sip_call_id on
    one day; the second goes beside the first with its cdr id in the name:
    ``.../{sip_call_id}.wav`` and ``.../{sip_call_id}~{cdr_id}.wav``. ``~`` is a
    character :func:`sanitize` never leaves in a value, so such a name cannot be
    another call's plain key.
    """
    suffix = "." + sanitize(ext, max_len=16)
    stem, tail = (key[: -len(suffix)], suffix) if key.endswith(suffix) else (key, "")
    return f"{stem}~{sanitize(call.cdr_id)}{tail}"


def render_key(template: str, call: CallRecord, ext: str, tz: ZoneInfo) -> str:
    """The object key for ``call``'s recording: ``template`` filled with sanitized values.

    Dates and hours are the call's start in ``tz``. Raises ValueError for a bad
    template, and BadRecordError if this call's values would put the key under
    ``manifests/`` or ``_archiver/`` (a template starting with a placeholder).
    """
    values = _values(call, ext, tz)
    key = "".join(
        literal + (values[name] if name is not None else "") for literal, name in _fields(template)
    )
    _check_key(key, what=f"key template {template!r}")
    top = key.split("/", 1)[0]
    if top in RESERVED_TOP_LEVEL:
        raise BadRecordError(
            f"call {call.cdr_id!r}: its key would start with {top}/, which the archiver reserves"
        )
    return key
