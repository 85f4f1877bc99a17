"""``verify --witness``: the chain against every witnessed checkpoint, and its writers'
registrations.

A checkpoint a trusted witness key cosigned records each writer's head link
(seq and SHA-256) at that time. The chain as it is now must pass through every
one of them: a link rewritten behind one, or the chain cut back before it, is
``CHAIN-REWRITTEN``, whatever the storage and the archive's own keys say.
A checkpoint that does not verify, or two that contradict each other, is
``WITNESS``. With witness keys, every writer must also be registered
(:mod:`archiver.witness.registry`), else ``UNREGISTERED-WRITER``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from archiver.retrieval.problems import Problem, ProblemKind
from archiver.settings import StorageSettings
from archiver.storage.base import ObjectStore
from archiver.storage.layout import head_key, link_key
from archiver.witness.checkpoint import ChainState, Checkpoint, conflicts, inconsistencies
from archiver.witness.note import Verifier
from archiver.witness.place import read_checkpoints
from archiver.witness.registry import check_registration


@dataclass
class WitnessReport:
    """What the witnesses vouch for."""

    keys: int = 0  # trusted witness keys
    places: int = 0
    checkpoints: int = 0  # verified checkpoints checked against the chain
    latest: datetime | None = None  # the newest cosignature
    registered: int = 0  # writers with a valid registration
    writers: int = 0  # writers whose registration was checked
    problems: list[Problem] = field(default_factory=list)

    def line(self) -> str:
        """One line for the verify report."""
        if not self.keys:
            return "WITNESS none: no witnessed checkpoint was checked (verify --witness)"
        latest = self.latest.isoformat().replace("+00:00", "Z") if self.latest else "never"
        return (
            f"WITNESS {self.checkpoints} checkpoint(s) from {self.places} place(s), the newest "
            f"cosigned {latest}; writers registered {self.registered}/{self.writers}"
        )


def _against(
    checkpoint: Checkpoint, chains: ChainState, seen: set[tuple[str, int]]
) -> list[Problem]:
    problems = []
    for found in inconsistencies(checkpoint, chains):
        if (found.writer, found.seq) in seen:
            continue
        seen.add((found.writer, found.seq))
        problems.append(
            Problem(ProblemKind.CHAIN_REWRITTEN, link_key(found.writer, found.seq), found.detail)
        )
    return problems


async def audit_witnesses(
    store: ObjectStore,
    chains: ChainState,
    writers: set[str],
    places: list[str],
    verifiers: list[Verifier],
    storage: StorageSettings,
) -> WitnessReport:
    """Check ``chains`` against the checkpoints at ``places`` and ``writers``' registrations."""
    report = WitnessReport(keys=len(verifiers), places=len(places))
    if not verifiers:
        return report
    seen: set[tuple[str, int]] = set()
    for place in places:
        witnessed = await read_checkpoints(place, storage, verifiers)
        for name, why in witnessed.refused:
            report.problems.append(
                Problem(ProblemKind.WITNESS, f"{place} {name}", f"not a trusted checkpoint: {why}")
            )
        ordered = sorted(witnessed.checkpoints, key=lambda c: (c.signed_at or 0, c.size))
        for older, newer in zip(ordered, ordered[1:], strict=False):
            for found in conflicts(older, newer):
                report.problems.append(
                    Problem(
                        ProblemKind.WITNESS,
                        f"{place} {older.name}",
                        f"writer {found.writer} link {found.seq}: {found.detail} (two "
                        "inconsistent checkpoints: the witness key signed a rewrite)",
                    )
                )
        for checkpoint in ordered:
            report.checkpoints += 1
            if checkpoint.signed_at and (
                report.latest is None or checkpoint.signed_at > report.latest
            ):
                report.latest = checkpoint.signed_at
            report.problems += _against(checkpoint, chains, seen)
    for writer in sorted(writers):
        report.writers += 1
        refused = await check_registration(store, writer, verifiers)
        if refused is None:
            report.registered += 1
        else:
            report.problems.append(
                Problem(
                    ProblemKind.UNREGISTERED,
                    head_key(writer),
                    f"writer {writer} was never registered with a witness key ({refused}): a chain "
                    "written outside the archiver, or a deployment whose registration was "
                    "skipped (archiver witness register)",
                )
            )
    return report
