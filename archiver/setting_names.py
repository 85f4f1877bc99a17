"""The names of every setting, and the ``ARCHIVER_*`` variables that are none of them.

pydantic-settings ignores a variable it does not know (``extra="ignore"``, so
that unrelated variables in a shared ``.env`` do no harm): a misspelled
``ARCHIVER_CONCURENCY=4`` would silently leave the default in force. The CLI
warns about each such variable, naming the closest real one.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from pydantic import BaseModel

from archiver.settings import ENV_PREFIX, Settings


def _names(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        kind = field.annotation
        # A sub-model may also be given whole, as JSON: ARCHIVER_SOURCE='{...}'.
        yield variable
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _names(kind, variable + "__")


def known_variables() -> frozenset[str]:
    """Every ``ARCHIVER_*`` variable a setting is read from (upper case)."""
    return frozenset(_names(Settings, ENV_PREFIX))


@dataclass(frozen=True)
class UnknownVariable:
    """An ``ARCHIVER_*`` variable no setting reads, and the closest real name if any."""

    name: str
    where: str
    closest: str | None

    def message(self) -> str:
        """One line for the user."""
        hint = f"; did you mean {self.closest}?" if self.closest else ""
        return f"{self.name} ({self.where}) is not a setting and is ignored{hint}"


def unknown_variables(names: Iterable[tuple[str, str]]) -> list[UnknownVariable]:
    """Of ``(name, where it was set)`` pairs, the ``ARCHIVER_*`` names no setting reads."""
    known = known_variables()
    # Compared without the prefix they all share, which would make any two look alike.
    bare = [k.removeprefix(ENV_PREFIX) for k in sorted(known)]
    unknown = []
    for name, where in names:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), bare, n=1, cutoff=0.75)
        unknown.append(UnknownVariable(name, where, ENV_PREFIX + close[0] if close else None))
    return unknown


def variables_set(
    env_file: str | Path | None, environ: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The variable names the settings are read from: the environment, ``.env``, ``--env-file``."""
    environ = os.environ if environ is None else environ
    found = [(name, "environment") for name in sorted(environ)]
    for path in (Path(".env"), Path(env_file) if env_file else None):
        if path is not None and path.is_file():
            found += [(name, str(path)) for name in dotenv_values(path)]
    return found
