"""How each provider spells a call: pure renderers, and the shared wire helpers."""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from archiver.simulator.calls import AGENTS, SimCall

# Numeric directions are this simulator's own invention: the cdr_v2 seed shows
# "direction": 3 without saying what 3 means, so real clients must not guess.
# The codes are stable per direction so tests can tell the quirk is consistent.
DIRECTION_CODES = {"inbound": 1, "outbound": 2, "local": 3}

# outcome -> (cdr_v2 Default status, hangup cause)
_DEFAULT_STATUS = {
    "answered": ("ANSWERED", "NORMAL_CLEARING"),
    "busy": ("BUSY", "USER_BUSY"),
    "no-answered": ("NO_ANSWER", "NO_ANSWER"),
    "cancel": ("CANCEL", "ORIGINATOR_CANCEL"),
    "not-available": ("NOT_AVAILABLE", "SUBSCRIBER_ABSENT"),
}

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def dumps(value: Any) -> str:
    """JSON as these providers send it: UTF-8 text, not \\u escapes."""
    return json.dumps(value, ensure_ascii=False)


def json_response(value: Any, status: int = 200) -> web.Response:
    """A JSON response with non-ASCII names left readable."""
    return web.json_response(value, status=status, dumps=dumps)


def local_time(value: datetime | None, tz: ZoneInfo) -> str:
    """A naive "YYYY-MM-DD HH:MM:SS" in the provider's zone; "" for no time."""
    return value.astimezone(tz).strftime(TIME_FORMAT) if value is not None else ""


def parse_local(text: str, tz: ZoneInfo, formats: tuple[str, ...]) -> datetime:
    """An aware datetime from a naive timestamp in the provider's zone."""
    text = text.strip()
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise ValueError(f"bad timestamp {text!r}")


@dataclass(frozen=True)
class Quirks:
    """The cdr_v2 seed's irregularities, decided once per call by seed."""

    flex: bool
    trailing_space: bool
    numeric_direction: bool
    lead_id: bool
    press_key: str | dict[str, str]


@functools.lru_cache(maxsize=65536)
def quirks(seed: int, index: int) -> Quirks:
    """Which irregularities the record of call ``index`` shows."""
    rng = random.Random(f"sim-quirks:{seed}:{index}")
    press_key_choices: tuple[str | dict[str, str], ...] = ("{}", "", {"1": "ok"})
    return Quirks(
        flex=rng.random() < 0.5,
        trailing_space=rng.random() < 0.1,
        numeric_direction=rng.random() < 0.3,
        lead_id=rng.random() < 0.5,
        press_key=rng.choice(press_key_choices),
    )


def default_record(call: SimCall, recording_url: str, tz: ZoneInfo) -> dict[str, Any]:
    """The call in cdr_v2's Default mapping, with the seed's quirks."""
    q = quirks(call.seed, call.index)
    status, cause = _DEFAULT_STATUS[call.outcome]
    names = AGENTS.get(call.extension, ("", "", "", "")) if call.agent else ("", "", "", "")
    record: dict[str, Any] = {
        "id": call.cdr_id + " " if q.trailing_space else call.cdr_id,
        "sip_call_id": call.sip_call_id,
        "cause": cause,
        "duration": call.duration,
        "direction": DIRECTION_CODES[call.direction] if q.numeric_direction else call.direction,
        "recording_url": recording_url,
        "extension": call.extension,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "receive_dest": "queue_support" if call.direction == "inbound" else "",
        "time_started": local_time(call.started_at, tz),
        "time_answered": local_time(call.answered_at, tz),
        "time_ended": local_time(call.ended_at, tz),
        "status": status,
        "app": call.app,
        "press_key": q.press_key,
    }
    record["lead_id" if q.lead_id else "customer_id"] = call.customer_id
    record["username"], record["firstname"], record["middlename"], record["lastname"] = names
    return record


def flex_record(call: SimCall, recording_url: str, tz: ZoneInfo) -> dict[str, Any]:
    """The call in cdr_v2's Flex mapping."""
    return {
        "cdrId": call.cdr_id,
        "sip_call_id": call.sip_call_id,
        "recordFile": recording_url,
        "extensionId": call.extension,
        "to": call.to_number,
        "hangupAt": local_time(call.ended_at, tz),
        "answeredAt": local_time(call.answered_at, tz),
        # Ringing starts a second after dialling; answers come later than that.
        "ringAt": local_time(call.started_at + timedelta(seconds=1), tz),
        "dialAt": local_time(call.started_at, tz),
        "status": call.outcome,
        "duration": call.duration,
        "direction": call.direction,
        "billsec": call.billsec,
        "customerId": call.customer_id,
    }


def epacific_record(call: SimCall, recording_url: str, tz: ZoneInfo) -> dict[str, Any]:
    """The call as epacific's /cdrs/json lists it."""
    rng = random.Random(f"sim-quality:{call.seed}:{call.index}")
    pdd = round(rng.uniform(0.3, 3.0), 1)
    mos = round(rng.uniform(3.5, 4.5), 1)
    answered = call.answered_at is not None
    tta = int((call.answered_at - call.started_at).total_seconds()) if call.answered_at else 0
    hours, rest = divmod(call.billsec, 3600)
    return {
        "callid": call.sip_call_id,
        "direction": call.direction,
        "cid_name": call.agent_name,
        "source": call.from_number,
        "destination": call.to_number,
        "recording": recording_url,
        "start": local_time(call.started_at, tz),
        "tta": tta,
        "duration": f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}",
        "pdd": pdd,
        "mos": mos if answered else 0,
        "status": _DEFAULT_STATUS[call.outcome][1],
    }
