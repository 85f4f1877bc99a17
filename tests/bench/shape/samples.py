"""Calls of the generated archive to look for: the simulator's, in a window (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from archiver.simulator.calls import iter_calls
from tests.support.shape.plan import Shape, cdr_record, sim_config


def sample_calls(shape: Shape, around: datetime, count: int) -> list[dict[str, Any]]:
    """Up to ``count`` calls started in the hour from ``around``, with what a search
    is asked: ids, numbers, extension, agent, start."""
    out = []
    for call in iter_calls(sim_config(shape), around, around + timedelta(hours=1)):
        record = cdr_record(call)
        out.append(
            {
                "cdr_id": record.cdr_id,
                "sip_call_id": record.sip_call_id,
                "from_number": record.from_number,
                "to_number": record.to_number,
                "extension": record.extension,
                "agent": record.agent,
                "agent_name": record.agent_name,
                "call_started_at": record.started_at.isoformat(),
            }
        )
    step = max(1, len(out) // count)
    return out[::step][:count]
