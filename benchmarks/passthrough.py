"""(a) The ceiling of one Python process: aiokafka consume, decode, produce, nothing else.

Run by ``python -m benchmarks`` as a child process (its peak RSS is its own)::

    python -m benchmarks.passthrough --bootstrap HOST:PORT --suffix S --events N --result F
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.common import peak_rss, suffixed_topics, write_result
from topics import Source, decode

__all__ = ["passthrough"]

#: Records per ``getmany``, as the worker's batches (LW_BATCH_SIZE).
BATCH = 500
#: Offsets are committed this often, after a flush, as Faust's commit interval.
COMMIT_SECONDS = 2.8


async def passthrough(
    bootstrap: str, suffix: str, partitions: int, events: int, output: str
) -> dict[str, float]:
    """Consume ``events`` input records, decode each, produce one small record per input."""
    topics = suffixed_topics(suffix)
    source_of = {topics.input_topic(source): source for source in Source}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"bench-passthrough-{suffix}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    # Assigned, not subscribed: a group join would only add Tansu's join wait before the start.
    consumer.assign([TopicPartition(t, p) for t in source_of for p in range(partitions)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await consumer.start()
    await producer.start()
    seen = 0
    first = 0.0
    try:
        committed = time.monotonic()
        while seen < events:
            batches = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            if batches and not seen:
                first = time.perf_counter()
            for tp, messages in batches.items():
                source = source_of[tp.topic]
                for message in messages:
                    record = decode(source, message.key, message.value)
                    out = orjson.dumps({"event_id": record.event_id, "ok": True})
                    await producer.send(output, out, key=message.key)
                seen += len(messages)
            if time.monotonic() - committed > COMMIT_SECONDS or seen >= events:
                await producer.flush()
                await consumer.commit()
                committed = time.monotonic()
        last = time.perf_counter()
    finally:
        await producer.stop()
        await consumer.stop()
    return {"events": seen, "seconds": last - first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--suffix", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--output", required=True, help="topic the pass-through writes to")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    figures = asyncio.run(
        passthrough(args.bootstrap, args.suffix, args.partitions, args.events, args.output)
    )
    write_result(args.result, {**figures, "peak_rss": peak_rss()})


if __name__ == "__main__":
    main()
