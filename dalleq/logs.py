"""Logging for every long-running command: one line per event to stderr (STYLE 10)."""

import logging
import sys


def configure_logging(level=logging.INFO) -> None:
    """One line per event to stderr. Our format never shows the caller's file, thread or process,
    so logging is told not to collect them (the logging HOWTO's "Optimization" switches): that
    was a tenth of the server's CPU per request under load (bench/bench_server.py).
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" on every start
