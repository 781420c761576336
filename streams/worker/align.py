"""A partition's three input streams handed to the engine in event-time order, as replay does.

Kafka keeps order within a topic partition only. A worker catching up on a backlog fetches
each input topic at its own pace, so the transactions of a partition can run hours or days of
event time ahead of its logins. The engine's timers wait for every stream (the watermark), so
no judgement is made before its data are in; but a borrower's later events, applied
meanwhile, would be in the state a timer reads (a bounded memory pushing out an older day, a
counterparty seen again), and the live alert would differ from replay's. This is Flink's
watermark alignment, at the scale of one worker: a record is held while another stream of its
partition still has records to come (its fetch position is behind its high-water mark) and
none of them is here to say whether they come before it.

Holding never stalls the stream and never loses a record. A record waits only while the
streams it waits for keep delivering: once none of them has delivered a record for
``max_hold`` seconds (counted from the record's own arrival when later), it goes on. A stream
read at a slower but steady pace is therefore waited for as long as it takes, as replay's
order needs; a stream that stopped (its records dropped and fetched again, the broker away)
holds nothing for longer than ``max_hold``. At most ``max_held`` records are held (the
earliest go first), and a partition's stored offset never passes a record still held
(:meth:`StreamAligner.held_from`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from faust.types import TP, Message

from detectors.engine import Input

__all__ = ["StreamAligner"]


@dataclass(slots=True)
class _Held:
    item: Input
    message: Message
    since: float  # monotonic time it arrived

    @property
    def ts(self) -> float:
        return self.item.record.ts.timestamp()


class StreamAligner:
    """Holds each partition's records until every stream that still has records to come has
    caught up with them in event time; releases them merged in event-time order."""

    def __init__(self, topics: Iterable[str], max_hold: float, max_held: int) -> None:
        self.topics = tuple(topics)
        self.max_hold = max_hold
        self.max_held = max_held
        self._held: dict[int, dict[str, deque[_Held]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, records: Iterable[tuple[Input, Message]], now: float) -> None:
        """Records as received, each topic partition's in offset order."""
        for item, message in records:
            streams = self._held.setdefault(item.partition, {})
            streams.setdefault(message.topic, deque()).append(_Held(item, message, now))
            self._count += 1

    def release(
        self, lagging: Callable[[TP], float | None], now: float
    ) -> list[tuple[Input, Message]]:
        """What may go to the engine now: per partition, the earliest held record while no
        stream still to be read could hold an earlier one, or once the streams it waits for
        delivered nothing for ``max_hold`` seconds since it arrived.

        ``lagging(tp)``: None when every record of that topic partition has arrived; else when
        it last delivered one (monotonic; ``-inf`` when never, or when its lag is unknown)."""
        released: list[tuple[Input, Message]] = []
        known: dict[TP, float | None] = {}  # asked once a call: nothing arrives while it runs

        def delivered_at(tp: TP) -> float | None:
            if tp not in known:
                known[tp] = lagging(tp)
            return known[tp]

        for partition in sorted(self._held):
            streams = self._held[partition]
            while True:
                heads = [(queue[0].ts, topic) for topic, queue in streams.items() if queue]
                if not heads:
                    break
                _, topic = min(heads)
                head = streams[topic][0]
                waited_for = [
                    at
                    for other in self.topics
                    if other != topic
                    and not streams.get(other)
                    and (at := delivered_at(TP(other, partition))) is not None
                ]
                still_coming = waited_for and now - max(head.since, *waited_for) < self.max_hold
                if still_coming and self._count <= self.max_held:
                    break
                streams[topic].popleft()
                self._count -= 1
                released.append((head.item, head.message))
        return released

    def held_from(self, tp: TP) -> int | None:
        """The offset of the first record of ``tp`` still held (None: nothing held): the
        partition's stored offset must not pass it."""
        queue = self._held.get(tp.partition, {}).get(tp.topic)
        return queue[0].message.offset if queue else None

    def forget(self, partition: int) -> None:
        """A partition now owned elsewhere: its held records are its next owner's to read."""
        streams = self._held.pop(partition, {})
        self._count -= sum(len(queue) for queue in streams.values())
