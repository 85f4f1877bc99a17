"""The cdr_v2 provider (seed 000): ``GET {base}/v2/cdr`` with a Bearer token.

Two record shapes exist, Default and Flex; each record is mapped by its own
shape. Quirks of the seed's own samples handled here: ids with trailing spaces,
``lead_id`` or ``customer_id``, empty strings for absent times, numeric
directions, ``press_key`` as a string or an object (kept in ``raw``), and the
same CDR on two pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote

from archiver.errors import BadRecordError, BadResponseError, NotFoundError
from archiver.http import ApiClient
from archiver.models import CallRecord, Provider
from archiver.settings import SourceSettings
from archiver.sources import mapping as m
from archiver.sources.base import Page
from archiver.sources.paging import ListingBounds, OffsetPaginator
from archiver.timeutil import ceil_second, naive_in

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_FLEX_MARKERS = ("cdrId", "recordFile", "dialAt", "hangupAt", "extensionId")


def is_flex(record: dict[str, Any]) -> bool:
    """Whether a record uses the Flex mapping (camelCase fields) rather than Default."""
    return any(name in record for name in _FLEX_MARKERS)


def _billsec(answered: datetime | None, ended: datetime | None) -> int | None:
    if answered is None or ended is None or ended < answered:
        return None
    return int((ended - answered).total_seconds())


def _agent_name(record: dict[str, Any]) -> str | None:
    # Vietnamese order: family name, middle name, given name.
    parts = [m.text(record.get(k)) for k in ("lastname", "middlename", "firstname")]
    joined = " ".join(p for p in parts if p)
    return joined or None


@dataclass(frozen=True)
class _Shape:
    """Where one record shape keeps each field (the seed's two mapping tables)."""

    name: str
    id: tuple[str, ...]
    started: str
    answered: str
    ended: str
    from_number: tuple[str, ...]
    to_number: tuple[str, ...]
    extension: tuple[str, ...]
    agent: tuple[str, ...]
    customer_id: tuple[str, ...]
    recording: tuple[str, ...]


DEFAULT = _Shape(
    name="Default",
    id=("id",),
    started="time_started",
    answered="time_answered",
    ended="time_ended",
    from_number=("from_number",),
    to_number=("to_number",),
    extension=("extension",),
    agent=("username",),
    customer_id=("lead_id", "customer_id"),
    recording=("recording_url",),
)
FLEX = _Shape(
    name="Flex",
    id=("cdrId", "id"),
    started="dialAt",
    answered="answeredAt",
    ended="hangupAt",
    from_number=("from",),
    to_number=("to",),
    extension=("extensionId",),
    # The seed: extensionId is "the agent's extension (username)".
    agent=("extensionId",),
    customer_id=("customerId",),
    recording=("recordFile",),
)


def parse_record(record: Any, tz: tzinfo) -> CallRecord:
    """Map one cdr_v2 record (either shape) to a CallRecord; BadRecordError if unusable."""
    if not isinstance(record, dict):
        raise BadRecordError(f"record is {type(record).__name__}, not an object")
    m.check_unicode(record)
    shape = FLEX if is_flex(record) else DEFAULT
    cdr_id = m.required_text(record, *shape.id)
    started = m.time_field(record, shape.started, tz)
    if started is None:
        raise BadRecordError(f"CDR {cdr_id[:64]}: missing {shape.started}")
    answered = m.time_field(record, shape.answered, tz)
    ended = m.time_field(record, shape.ended, tz)
    direction, direction_raw = m.direction(record.get("direction"))
    billsec = m.int_field(record, "billsec")
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id=cdr_id,
        sip_call_id=m.first_text(record, "sip_call_id") or cdr_id,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        duration=m.int_field(record, "duration"),
        billsec=billsec if billsec is not None else _billsec(answered, ended),
        direction=direction,
        direction_raw=direction_raw,
        from_number=m.first_text(record, *shape.from_number),
        to_number=m.first_text(record, *shape.to_number),
        extension=m.first_text(record, *shape.extension),
        agent=m.first_text(record, *shape.agent),
        agent_name=_agent_name(record),
        customer_id=m.first_text(record, *shape.customer_id),
        status=m.first_text(record, "status"),
        cause=m.first_text(record, "cause"),
        recording_url=m.url_field(record, *shape.recording),
        raw=record,
    )


class CdrV2Source:
    """cdr_v2 over HTTP: offset/limit listing and lookup by id."""

    def __init__(self, client: ApiClient, settings: SourceSettings) -> None:
        base = settings.effective_base_url
        if base is None or settings.token is None:
            raise ValueError("cdr_v2 needs base_url and token")
        self._client = client
        self._base = base
        self._tz = settings.tz
        self._page_size = settings.page_size
        self._bounds = ListingBounds.of(settings)
        self._headers = {
            "Authorization": f"Bearer {settings.token.get_secret_value()}",
            "Accept": "application/json",
        }

    @property
    def provider(self) -> Provider:
        """This is a cdr_v2 source."""
        return Provider.CDR_V2

    @property
    def granularity(self) -> timedelta:
        """start_date/end_date take seconds."""
        return timedelta(seconds=1)

    async def list_window(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        """Every CDR with start time in [start, end), page by page, each once."""
        url = f"{self._base}/v2/cdr"
        paginator = OffsetPaginator(self._page_size, self._bounds)
        seen: set[str] = set()
        window = self._window(start, end)
        while paginator.has_more:
            body = await self._client.request_json(
                "GET", url, params={**window, **paginator.params()}, headers=self._headers
            )
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise BadResponseError(f"GET {url}: the response has no 'data' list")
            rows: list[Any] = body["data"]
            page, ids = m.collect_page(rows, parse_record, self._tz, start, end, seen)
            paginator.advance(
                ids,
                total=m.as_int(body.get("total")),
                server_limit=m.as_int(body.get("limit")),
                rows=len(rows),
            )
            yield page

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        """``total`` of a one-record page of [start, end)."""
        url = f"{self._base}/v2/cdr"
        params: dict[str, str | int] = {**self._window(start, end), "limit": 1, "offset": 0}
        body = await self._client.request_json("GET", url, params=params, headers=self._headers)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BadResponseError(f"GET {url}: the response has no 'data' list")
        total = m.as_int(body.get("total"))
        return total if total is not None and total >= 0 else None

    def _window(self, start: datetime, end: datetime) -> dict[str, str]:
        return {
            "start_date": naive_in(start.replace(microsecond=0), self._tz, _TIME_FORMAT),
            "end_date": naive_in(ceil_second(end), self._tz, _TIME_FORMAT),
        }

    async def lookup(self, ident: str) -> CallRecord | None:
        """``GET {base}/v2/cdr/<ID>``: ID is a cdr id or a sip_call_id."""
        url = f"{self._base}/v2/cdr/{quote(ident.strip(), safe='')}"
        try:
            body = await self._client.request_json("GET", url, headers=self._headers)
        except NotFoundError:
            return None
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        return parse_record(body, self._tz)

    async def probe(self) -> str:
        """One listing request for a single CDR."""
        url = f"{self._base}/v2/cdr"
        body = await self._client.request_json(
            "GET", url, params={"limit": 1, "offset": 0}, headers=self._headers
        )
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise BadResponseError(f"GET {url}: the response has no 'data' list")
        total = body.get("total")
        return f"cdr_v2 API at {self._base} answered; total CDRs reported: {total}"
