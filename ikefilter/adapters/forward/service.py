"""Running a forward server until a signal: the entry points of ``ikefilter forward``.

    await serve(processor, listen=("127.0.0.1", 24224), output="-")
    run(processor, listen=("0.0.0.0", 24224), upstream=("10.0.0.5", 24224))

The options are :class:`~ikefilter.adapters.forward.server.ForwardServer`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from .contract import ForwardStats, Processor
from .server import ForwardServer

log = logging.getLogger(__name__)


async def serve(
    processor: Processor,
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    **options: Any,
) -> ForwardStats:
    """Run a :class:`ForwardServer` until SIGTERM/SIGINT (or ``stop`` is set); return its
    counters.

    ``options`` are :class:`ForwardServer`'s (see the module docstring). ``stop`` lets a
    caller end the server without a signal; ``handle_signals=False`` leaves the process's
    signal handlers alone.
    """
    stop = stop or asyncio.Event()
    server = ForwardServer(processor, **options)
    loop = asyncio.get_running_loop()
    installed = []
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
    try:
        await server.start()
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await server.stop()
    return server.stats


def run(processor: Processor, **options: Any) -> ForwardStats:
    """Blocking form of :func:`serve`, for ``ikefilter forward``: its counters, logged."""
    stats = asyncio.run(serve(processor, **options))
    log.info("forward server stopped: %s", stats)
    return stats
