"""Retention schedules: which rule keeps a recording, and until when (pure).

A *schedule* is an ordered list of rules read from a small TOML or JSON file
(``ARCHIVER_RETENTION__RULES_FILE``)::

    [[rule]]
    name = "complaints"          # shown in tombstones, certificates and get
    days = 3650
    legal = true                 # a legal obligation: an erasure request waits for its end
    direction = "inbound"        # every field given must match (AND)
    extension = ["101", "102"]   # a list: any of its values
    number = "0903 123 456"      # either side of the call, any spelling

    [[rule]]
    name = "sales"
    days = 365
    provider = "cdr_v2"
    started_before = "2026-06-01T00:00:00+07:00"

The first rule whose every condition matches a manifest line gives its
retention; a line no rule matches falls to the *default rule*
(``ARCHIVER_STORAGE__RETENTION_DAYS`` days when above 0); with no default, such
a recording is never due; a top-level ``default_days = N`` in the file sets the
default rule instead (a local folder has no Object Lock, hence no retention
days). A recording's retention runs from its call's start
(``call_started_at``; ``archived_at`` when the line has none). A legal hold
outranks every rule: ``archiver dispose`` never deletes a held object.

A rule marked ``legal = true`` is a legal obligation to keep (a sector rule):
a data subject's erasure request (``archiver subject --erase``) is refused
until it ends. Any other rule is the archive's own purpose, which an erasure
request ends early.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.errors import ConfigError
from archiver.models import CallRecord

DEFAULT_RULE = "default"
# What a line no rule matches (and no default rule) is kept under: forever.
NO_RULE = "none"
# Rules read at most: a schedule is a page of policy, not a data set.
MAX_RULES = 200
MAX_FILE_BYTES = 256 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_NON_DIGITS = re.compile(r"\D+")
COUNTRY_CODE = "84"
# The fields a rule may test, each against the manifest line's field of that name.
TEXT_FIELDS = ("direction", "extension", "agent", "provider")
NUMBER_FIELDS = ("number", "from_number", "to_number")
TIME_FIELDS = ("started_after", "started_before")
_KNOWN = {"name", "days", "legal", *TEXT_FIELDS, *NUMBER_FIELDS, *TIME_FIELDS}


def phone_key(number: str) -> str:
    """A phone number as compared: digits only, +84/84 as a leading 0 (pure).

    The same comparison as ``search`` (:func:`archiver.retrieval.search.phone_key`),
    kept here so that the manifest level does not import retrieval.
    """
    digits = _NON_DIGITS.sub("", number)
    if digits.startswith("00" + COUNTRY_CODE):
        digits = digits[2:]
    if digits.startswith(COUNTRY_CODE) and len(digits) >= 11:
        digits = "0" + digits[len(COUNTRY_CODE) :]
    return digits


@dataclass(frozen=True, slots=True)
class Rule:
    """One retention rule: its conditions (each a set of accepted values) and period."""

    name: str
    days: int
    conditions: tuple[tuple[str, frozenset[str]], ...] = ()
    started_after: datetime | None = None
    started_before: datetime | None = None
    legal: bool = False  # a legal obligation to keep: erasure waits for its end

    def matches(self, line: Mapping[str, Any], codes: Mapping[str, str] | None = None) -> bool:
        """True when every condition holds for the manifest line ``line``; ``codes`` says
        what a provider's numeric direction means (``ARCHIVER_SOURCE__DIRECTION_CODES``)."""
        for name, accepted in self.conditions:
            if name == "direction":
                if not _directions(line, codes or {}) & accepted:
                    return False
            elif name in NUMBER_FIELDS:
                sides = ("from_number", "to_number") if name == "number" else (name,)
                values = {phone_key(str(line.get(side) or "")) for side in sides}
                if not values & accepted:
                    return False
            elif str(line.get(name) or "").strip().casefold() not in accepted:
                return False
        if self.started_after is not None or self.started_before is not None:
            started = started_at(line)
            if started is None:
                return False
            if self.started_after is not None and started < self.started_after:
                return False
            if self.started_before is not None and started >= self.started_before:
                return False
        return True


def _directions(line: Mapping[str, Any], codes: Mapping[str, str]) -> set[str]:
    """The line's direction as a rule compares it: the normalized one, else what its
    numeric code means, and the raw code itself (a rule may name ``"2"``)."""
    raw = str(line.get("direction_raw") or "").strip()
    found = {str(line.get("direction") or "").strip().casefold(), raw.casefold()}
    if raw in codes:
        found.add(str(codes[raw]).casefold())
    found.discard("")
    return found


@dataclass(frozen=True, slots=True)
class Due:
    """What the schedule says of one line: its rule and when its retention ends (None: never)."""

    rule: str
    ends: datetime | None
    legal: bool = False  # the rule is a legal obligation to keep

    def due_by(self, moment: datetime) -> bool:
        """True when the retention ended at or before ``moment``."""
        return self.ends is not None and self.ends <= moment


@dataclass(frozen=True, slots=True)
class Schedule:
    """Rules in order, then the default rule (None: unmatched lines are kept)."""

    rules: tuple[Rule, ...] = ()
    default_days: int | None = None
    direction_codes: Mapping[str, str] = field(default_factory=dict)

    def rule_for(self, line: Mapping[str, Any]) -> Rule | None:
        """The first rule matching ``line``, else the default rule, else None."""
        for rule in self.rules:
            if rule.matches(line, self.direction_codes):
                return rule
        if self.default_days:
            return Rule(DEFAULT_RULE, self.default_days)
        return None

    def due(self, line: Mapping[str, Any]) -> Due:
        """The line's rule and the end of its retention."""
        rule = self.rule_for(line)
        if rule is None:
            return Due(NO_RULE, None)
        start = started_at(line) or _moment(line.get("archived_at"))
        if start is None:
            return Due(rule.name, None, rule.legal)
        return Due(rule.name, start + timedelta(days=rule.days), rule.legal)


def call_fields(call: CallRecord) -> dict[str, Any]:
    """What a rule reads of a call about to be archived: its manifest line's fields (pure)."""
    return {
        "provider": call.provider.value,
        "direction": call.direction.value if call.direction else None,
        "direction_raw": call.direction_raw,
        "extension": call.extension,
        "agent": call.agent,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "call_started_at": call.started_at.isoformat(),
    }


def started_at(line: Mapping[str, Any]) -> datetime | None:
    """The call's start from a manifest line, when readable and zoned."""
    return _moment(line.get("call_started_at"))


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _values(name: str, value: object, where: str) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > 1000:
        raise ConfigError(f"{where}: {name} must be a value or a list of 1 to 1000 values")
    out = set()
    for item in items:
        if not isinstance(item, str | int) or isinstance(item, bool) or not str(item).strip():
            raise ConfigError(f"{where}: {name} must be text or a list of texts")
        text = str(item).strip()
        out.add(phone_key(text) if name in NUMBER_FIELDS else text.casefold())
    if name in NUMBER_FIELDS and "" in out:
        raise ConfigError(f"{where}: {name} holds a value with no digit")
    return frozenset(out)


def _time(name: str, value: object, where: str) -> datetime:
    moment = _moment(value.isoformat() if isinstance(value, datetime) else value)
    if moment is None:
        raise ConfigError(f"{where}: {name} must be an ISO 8601 time with a UTC offset")
    return moment


def parse_rule(data: object, where: str) -> Rule:
    """One rule from its decoded table; ConfigError naming what is wrong."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a rule must be a table of name, days and conditions")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == DEFAULT_RULE:
        raise ConfigError(
            f"{where}: name must be 1-64 letters, digits, space, '.', '_' or '-' "
            f"(and not {DEFAULT_RULE!r})"
        )
    days = data.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
        raise ConfigError(f"{where} ({name}): days must be a whole number from 1 to 36500")
    conditions = tuple(
        (field, _values(field, data[field], f"{where} ({name})"))
        for field in (*TEXT_FIELDS, *NUMBER_FIELDS)
        if field in data
    )
    after = (
        _time("started_after", data["started_after"], where) if "started_after" in data else None
    )
    before = (
        _time("started_before", data["started_before"], where) if "started_before" in data else None
    )
    legal = data.get("legal", False)
    if not isinstance(legal, bool):
        raise ConfigError(f"{where} ({name}): legal must be true or false")
    return Rule(name, days, conditions, after, before, legal)


def parse_schedule(
    text: str,
    *,
    json_format: bool,
    default_days: int,
    where: str,
    direction_codes: Mapping[str, str] | None = None,
) -> Schedule:
    """A schedule from a file's text (TOML, or JSON: ``{"rule": [...]}``); ConfigError if bad."""
    try:
        data: object = json.loads(text) if json_format else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: not {'JSON' if json_format else 'TOML'}: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"rule", "default_days"}:
        raise ConfigError(f"{where}: expected only default_days and a list of rules under 'rule'")
    if "default_days" in data:
        days = data["default_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 36500:
            raise ConfigError(f"{where}: default_days must be a whole number from 0 to 36500")
        default_days = days
    raw = data.get("rule", [])
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise ConfigError(f"{where}: 'rule' must be a list of at most {MAX_RULES} rules")
    rules = tuple(parse_rule(item, f"{where} rule {n}") for n, item in enumerate(raw, start=1))
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: two rules share a name")
    return Schedule(rules, default_days or None, dict(direction_codes or {}))


def load_schedule(
    path: Path | None, default_days: int, direction_codes: Mapping[str, str] | None = None
) -> Schedule:
    """The schedule of ``path`` (TOML; JSON if it ends in .json), or the default rule alone."""
    if path is None:
        return Schedule((), default_days or None, dict(direction_codes or {}))
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"retention rules file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"retention rules file {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"retention rules file {path}: not UTF-8") from None
    return parse_schedule(
        text,
        json_format=path.suffix.lower() == ".json",
        default_days=default_days,
        where=str(path),
        direction_codes=direction_codes,
    )
