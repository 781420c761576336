"""Run a module under cProfile counting CPU time, not wall time: ``--profile``'s worker.

``python -m cProfile`` times with the wall clock, so on a shared machine every moment the
process waits for a core lands on whatever function it was in. Process CPU time does not::

    python -m benchmarks.profiled OUT.prof streams.ops.cli worker --log-level warning
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *argv = sys.argv[1:]
    sys.argv = [module, *argv]
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
