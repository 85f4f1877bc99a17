"""The epacific provider (seed 003): ``POST {base}/cdrs/json`` with api_key/api_secret.

The API filters ``date_range`` by whole minutes, so this source asks for the
minutes covering [start, end) and keeps only the calls inside it: a call at a
minute edge is neither lost nor listed by two adjacent windows. The seed's
response shapes are images we do not have; the record's call id is read from
``callid`` (or ``call_id``, ``uuid``, ``sip_call_id``) and serves as both the
cdr id and the sip_call_id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from archiver.errors import BadRecordError, BadResponseError
from archiver.http import ApiClient
from archiver.models import CallRecord, Provider
from archiver.settings import SourceSettings
from archiver.sources import mapping as m
from archiver.sources.base import Page
from archiver.sources.paging import ListingBounds, PageNumberPaginator
from archiver.timeutil import ceil_minute, floor_minute, naive_in

_MINUTE_FORMAT = "%Y-%m-%d %H:%M"
_ID_FIELDS = ("callid", "call_id", "uuid", "sip_call_id")
_LIST_KEYS = ("data", "cdrs", "records", "result", "items")


def parse_record(record: Any, tz: tzinfo) -> CallRecord:
    """Map one epacific record to a CallRecord; BadRecordError if unusable."""
    if not isinstance(record, dict):
        raise BadRecordError(f"record is {type(record).__name__}, not an object")
    m.check_unicode(record)
    call_id = m.required_text(record, *_ID_FIELDS)
    started = m.time_field(record, "start", tz)
    if started is None:
        raise BadRecordError(f"call {call_id[:64]}: missing start")
    talk = m.int_field(record, "duration")
    tta = m.int_field(record, "tta")
    direction, direction_raw = m.direction(record.get("direction"))
    try:
        answered = started + timedelta(seconds=tta) if tta else None
        ended = started + timedelta(seconds=(tta or 0) + talk) if talk is not None else None
    except OverflowError:
        # A tta or duration of 10**20 seconds, or a start in the year 9999.
        raise BadRecordError(f"call {call_id[:64]}: tta or duration out of range") from None
    cause = m.first_text(record, "status", "hangup_cause")
    return CallRecord(
        provider=Provider.EPACIFIC,
        cdr_id=call_id,
        sip_call_id=call_id,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        # "duration" is the talk time; the ring time before it is "tta".
        duration=talk,
        billsec=talk if answered is not None else None,
        direction=direction,
        direction_raw=direction_raw,
        from_number=m.first_text(record, "source"),
        to_number=m.first_text(record, "destination"),
        extension=m.first_text(record, "extension"),
        agent_name=m.first_text(record, "cid_name"),
        status=cause,
        cause=cause,
        recording_url=m.url_field(record, "recording", "recording_url"),
        raw=record,
    )


def _records(body: Any, endpoint: str) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in _LIST_KEYS:
            value = body.get(key)
            if isinstance(value, list):
                return value
            if isinstance(value, dict) and any(k in value for k in _ID_FIELDS):
                return [value]
        if any(k in body for k in _ID_FIELDS):
            return [body]
        if str(body.get("status", "")).lower() in ("error", "fail", "failed"):
            message = m.text(body.get("message")) or "no message"
            raise BadResponseError(f"{endpoint}: the API reported an error: {message[:200]}")
    raise BadResponseError(f"{endpoint}: the response has no list of CDRs")


def _paging(body: Any) -> Mapping[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("paging"), dict):
        paging: Mapping[str, Any] = body["paging"]
        return paging
    return {}


def _count(paging: Mapping[str, Any], rows: int, page: int) -> int | None:
    """``record_count``, if present and not contradicted by the rows on this page."""
    count = m.as_int(paging.get("record_count"))
    if count is None or count < 0 or (page == 1 and rows > count):
        return None
    return count


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


class EpacificSource:
    """epacific over HTTP: page/limit listing by minute range, lookup by call id."""

    def __init__(self, client: ApiClient, settings: SourceSettings) -> None:
        base = settings.effective_base_url
        if base is None or settings.api_key is None or settings.api_secret is None:
            raise ValueError("epacific needs api_key and api_secret")
        self._client = client
        self._base = base
        self._tz = settings.tz
        self._page_size = settings.page_size
        self._bounds = ListingBounds.of(settings)
        self._form = settings.request_format == "form"
        self._auth = {
            "api_key": settings.api_key.get_secret_value(),
            "api_secret": settings.api_secret.get_secret_value(),
        }

    @property
    def provider(self) -> Provider:
        """This is an epacific source."""
        return Provider.EPACIFIC

    @property
    def granularity(self) -> timedelta:
        """date_range takes whole minutes."""
        return timedelta(minutes=1)

    async def _post(self, path: str, fields: dict[str, Any]) -> Any:
        url = f"{self._base}{path}"
        body = {**self._auth, **fields}
        if self._form:
            form = {
                k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in body.items()
            }
            return await self._client.request_json("POST", url, form=form)
        return await self._client.request_json("POST", url, json_body=body)

    def date_range(self, start: datetime, end: datetime) -> dict[str, str]:
        """The minutes covering [start, end), as the API wants them.

        ``to`` is the last minute that can hold a call before ``end``; whether the
        API treats it as inclusive or not, the local filter keeps the edge exact.
        """
        last = ceil_minute(end)
        return {
            "from": naive_in(floor_minute(start), self._tz, _MINUTE_FORMAT),
            "to": naive_in(last, self._tz, _MINUTE_FORMAT),
        }

    async def list_window(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        """Every CDR with start time in [start, end), page by page, each once."""
        endpoint = f"POST {self._base}/cdrs/json"
        paginator = PageNumberPaginator(self._page_size, self._bounds)
        seen: set[str] = set()
        date_range = self.date_range(start, end)
        while paginator.has_more:
            body = await self._post("/cdrs/json", {"date_range": date_range, **paginator.params()})
            rows = _records(body, endpoint)
            page, ids = m.collect_page(rows, parse_record, self._tz, start, end, seen)
            paging = _paging(body)
            paginator.advance(
                ids,
                page_count=m.as_int(paging.get("page_count")),
                next_page=_as_bool(paging.get("next_page")),
                server_limit=m.as_int(paging.get("limit")),
                rows=len(rows),
            )
            yield page

    async def count_window(self, start: datetime, end: datetime) -> int | None:
        """``paging.record_count`` of a one-record page of the minutes [start, end).

        Unlike a listing, a count cannot trim to the window afterwards, so it asks
        for exactly the minutes of [start, end): ``to`` is the last minute inside,
        as the API's ``to`` covers all of its minute. Neighbouring counts then add up.
        """
        first, last = floor_minute(start), ceil_minute(end) - timedelta(minutes=1)
        if last < first:
            return 0
        endpoint = f"POST {self._base}/cdrs/json"
        date_range = {
            "from": naive_in(first, self._tz, _MINUTE_FORMAT),
            "to": naive_in(last, self._tz, _MINUTE_FORMAT),
        }
        body = await self._post("/cdrs/json", {"date_range": date_range, "page": 1, "limit": 1})
        rows = _records(body, endpoint)
        return _count(_paging(body), len(rows), 1)

    async def lookup(self, ident: str) -> CallRecord | None:
        """POST ``callid`` to the listing endpoint; None if the API knows no such call."""
        body = await self._post("/cdrs/json", {"callid": ident.strip()})
        rows = _records(body, f"POST {self._base}/cdrs/json")
        for row in rows:
            try:
                call = parse_record(row, self._tz)
            except BadRecordError:
                continue
            if call.cdr_id == ident.strip():
                return call
        return None

    async def probe(self) -> str:
        """``POST {base}/ext_reg/json``: the registered extensions."""
        endpoint = f"POST {self._base}/ext_reg/json"
        body = await self._post("/ext_reg/json", {})
        rows = _records(body, endpoint) if not isinstance(body, dict) or "data" in body else []
        return f"epacific API at {self._base} answered; {len(rows)} extension(s) registered"
