"""Ending a process's background tasks without letting one of them hold the shutdown."""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger(__name__)

# How long a cancelled follower may take to end. A redis-py read cancelled as its reply arrives
# can miss the cancel and wait on its socket for good (seen about once in 100 cancels of an XREAD
# with BLOCK 1 ms, with redis-py 8.1 and hiredis); shutdown must not wait with it.
STOP_WITHIN_S = 2.0


async def cancel_and_wait(task: asyncio.Task[None], *, within_s: float = STOP_WITHIN_S) -> bool:
    """Cancel ``task`` and wait for it to end, ``within_s`` at most; whether it ended. One that
    does not end in time is left to the event loop's close (and logged)."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        log.warning("background.task_abandoned", task=task.get_name(), waited_s=within_s)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("background.task_failed", task=task.get_name(), error=repr(task.exception()))
    return True
