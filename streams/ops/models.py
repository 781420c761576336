"""``lendwatch models``: the live verdict models, as each worker publishes them in Redis.

Every worker learns the verdict models from the whole feedback topic and publishes, after each
batch of verdicts, their version (labels learnt and a digest of the verdicts in order), the
digest of their state, the feedback offsets they reflect and, per alert category, the labels
and the cut (streams/worker/feedback.py). Workers that agree show one version and one state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from streams.worker.feedback import status_key

__all__ = ["read_models", "render_models"]


async def read_models(redis_url: str, prefix: str) -> list[dict[str, Any]]:
    """Each worker's published models, by instance name."""
    redis = Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        raw = await redis.hgetall(status_key(prefix))
    finally:
        await redis.aclose()
    return sorted((orjson.loads(value) for value in raw.values()), key=lambda s: s["instance"])


def _age(published_at: float, now: float) -> str:
    seconds = max(0.0, now - published_at)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def render_models(statuses: Sequence[dict[str, Any]], now: float | None = None) -> str:
    """One block per worker, then whether they agree."""
    if not statuses:
        return "no worker has published verdict models yet\n"
    now = time.time() if now is None else now
    lines = []
    for status in statuses:
        offsets = ", ".join(f"{p}:{o}" for p, o in sorted(status["offsets"].items())) or "none"
        lines.append(
            f"{status['instance']}: verdict models {status['version']} (state {status['state']}), "
            f"{status['labels']} labels learnt, last verdict {status['last_update'] or 'none'}, "
            f"published {_age(status['published_at'], now)}; feedback offsets {offsets}"
        )
        for category, model in status["categories"].items():
            cut = "–" if model["cut"] is None else f"{model['cut']:.2f}"
            lines.append(
                f"  {category:<20} {model['labels']:>6} labels ({model['confirmed']} confirmed, "
                f"{model['dismissed']} dismissed), {'holding' if model['ready'] else 'learning'}"
                f", cut {cut}, {model['held']} held here"
            )
        counts = ", ".join(f"{k} {v}" for k, v in sorted(status["verdicts"].items()))
        lines.append(f"  verdicts: {counts or 'none'}")
    states = {(s["version"], s["state"]) for s in statuses}
    agree = "agree" if len(states) == 1 else f"differ ({len(states)} versions; some may lag)"
    lines.append(f"{len(statuses)} worker(s): their models {agree}")
    return "\n".join(lines) + "\n"
