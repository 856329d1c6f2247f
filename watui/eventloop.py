"""The event loop every watui command runs on: uvloop where it exists, asyncio's otherwise.

uvloop is libuv under asyncio's API. At 1,000 msg/s it takes ~15% off the engine's CPU (timers,
socket callbacks and task wake-ups move from Python into C: bench/engine_bench.py, 0.87 -> 0.73
ms per message before other changes). Windows has no uvloop; there asyncio's loop does the job.
"""

from __future__ import annotations

import asyncio
import sys


def use_fast_event_loop() -> bool:
    """Make every later ``asyncio.run`` (ours and Textual's) use uvloop; True if it does."""
    try:
        import uvloop
    except ImportError:
        return False
    if sys.version_info >= (3, 12):
        import warnings

        # 3.14 deprecates loop policies; until asyncio.run takes a factory everywhere we call
        # it (Textual's App.run does not), the policy is the one switch that reaches them all.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*event_?loop_?policy")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
