"""Entry point of ``python -m benchmarks`` (``make bench``)."""

import sys

from benchmarks.cli import main

sys.exit(main())
