"""The per-borrower risk view in Redis, for collections tools: who to call first, and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from streams.worker.delivery import Breaker
from topics.records import Alert

__all__ = ["RISK_TTL_SECONDS", "RiskBoard"]

#: A borrower's view outlives its last change by this long (a loan term, with margin).
RISK_TTL_SECONDS = 400 * 24 * 3600


class RiskBoard:
    """Reads and writes the risk views, stored and read under the id the alerts carry:
    ``public_id`` of the borrower's own id (masked, unless masking is off).

    For each borrower with installments, under the settings' Redis prefix:

    - ``risk:borrower:<id>``, a hash: ``score`` (the latest delinquency assessment, 0..1),
      ``scored_at``, ``scored_installment``, ``open_installments`` (JSON: loan, number, due
      date, amount due, paid so far), ``last_alert`` (JSON: the latest collections alert's
      id, severity, score, time, installment and reasons), ``updated_at``;
    - ``risk:ranked``, a sorted set of borrower ids by ``score``, holding only borrowers with
      an open installment: ``ZREVRANGE`` gives the collections queue.

    Written by the worker after each batch, for the borrowers whose installments, assessment
    or collections alerts changed in it, in one pipelined round trip.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str = "lw",
        breaker: Breaker | None = None,
        public_id: Callable[[str], str] = str,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.breaker = breaker or Breaker()
        self.public_id = public_id
        self.ranked_key = f"{prefix}:risk:ranked"

    def key(self, borrower: str) -> str:
        return f"{self.prefix}:risk:borrower:{borrower}"

    async def update(self, views: dict[str, dict[str, Any]], alerts: Sequence[Alert] = ()) -> None:
        """Write ``views`` (borrower's own id to :func:`detectors.delinquency.risk_view`) and
        the collections ``alerts``, as published, as each borrower's last alert; raises while
        Redis is down."""
        if not views and not alerts:
            return
        await self.breaker.call(lambda: self._write(views, alerts))

    async def _write(self, views: dict[str, dict[str, Any]], alerts: Sequence[Alert]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        pipe = self.redis.pipeline(transaction=False)
        for borrower, view in views.items():
            public = self.public_id(borrower)
            key = self.key(public)
            pipe.hset(
                key,
                mapping={
                    "borrower_id": public,
                    "score": view["score"],
                    "scored_at": view["scored_at"] or "",
                    "scored_installment": view["scored_installment"] or "",
                    "open_installments": orjson.dumps(view["open_installments"]),
                    "updated_at": now,
                },
            )
            pipe.expire(key, RISK_TTL_SECONDS)
            if view["open_installments"]:
                pipe.zadd(self.ranked_key, {public: view["score"]})
            else:
                pipe.zrem(self.ranked_key, public)
        for alert in alerts:  # in the order sent: the last one is the latest
            key = self.key(alert.borrower_id)  # as published: the public id already
            pipe.hset(key, "last_alert", orjson.dumps(_summary(alert)))
            pipe.expire(key, RISK_TTL_SECONDS)
        await pipe.execute()

    async def get(self, borrower: str) -> dict[str, Any] | None:
        """One borrower's view (by the id alerts carry), decoded; None if it has none."""
        raw: dict[Any, Any] = await self.redis.hgetall(self.key(borrower))
        return _decode(raw) if raw else None

    async def queue(self, limit: int = 20) -> list[dict[str, Any]]:
        """The borrowers with open installments, highest risk first."""
        ranked: list[Any] = await self.redis.zrevrange(self.ranked_key, 0, limit - 1)
        pipe = self.redis.pipeline(transaction=False)
        for borrower in ranked:
            pipe.hgetall(self.key(borrower.decode()))
        return [_decode(raw) for raw in await pipe.execute() if raw]


def _summary(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "severity": alert.severity,
        "score": alert.score,
        "ts": alert.ts.isoformat(),
        "loan_id": alert.loan_id,
        "installment": alert.installment,
        "reasons": [reason.message for reason in alert.reasons],
    }


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    view: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    view["score"] = float(view.get("score") or 0.0)
    view["open_installments"] = orjson.loads(view.get("open_installments") or "[]")
    view["last_alert"] = orjson.loads(view["last_alert"]) if view.get("last_alert") else None
    return view


def render_queue(views: Iterable[dict[str, Any]]) -> str:
    """The collections queue as a terminal table."""
    lines = [f"{'borrower':<24} {'score':>5}  {'open':>4}  {'next due':<10}  last alert"]
    for view in views:
        open_ = view["open_installments"]
        due = min((i["due_date"] for i in open_), default="")
        last = view["last_alert"]
        said = f"{last['severity']} {last['ts'][:10]}: {'; '.join(last['reasons'])}" if last else ""
        lines.append(
            f"{view['borrower_id']:<24} {view['score']:>5.2f}  {len(open_):>4}  {due:<10}  {said}"
        )
    return "\n".join(lines)
