"""Run a coroutine to its end from plain synchronous code, whatever the calling thread is.

asyncio.run() and async_to_sync refuse a thread that already runs an event loop (an async
server's thread, a test session driving a browser through Playwright's sync API); there
the coroutine gets a thread of its own and a fresh loop.
"""

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
