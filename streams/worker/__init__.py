"""The live worker, room by room.

- ``app``: the Faust app of ``lendwatch worker`` (``create_app``, ``run_worker``): an input
  reader, the timers and the ``/metrics`` page around a pipeline;
- ``batches``: the input reader, batches straight from Faust's delivery queue;
- ``pipeline``: what a batch and a timer do (decode, dead-letter, engine, results handed on);
- ``writer``: states written behind, then the input offsets stored with them and committed;
- ``publisher``: alerts masked, sent once, recorded as published; the risk view kept current;
- ``delivery``: the Redis breaker and the set of published alert ids;
- ``tables``: the state store over the Faust table, and the model checkpoints;
- ``redis_index``: the cross-borrower index; ``risk``: the collections risk view;
- ``metrics``: the Prometheus metrics and the log of degraded batches;
- ``offsets``: each input partition read in order from the offsets stored with its state;
- ``compat``: every use of Faust, mode and aiokafka internals, with the versions checked.
"""
