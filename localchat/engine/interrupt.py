"""Ctrl-C during a llama.cpp load.

Python runs signal handlers in the main thread between bytecodes.  A load that
runs in the main thread spends its time in C, where the only Python code that
runs is llama.cpp's log callback: the ``KeyboardInterrupt`` lands there, ctypes
prints "Exception ignored on calling ctypes callback function" and the load
goes on.  So ``run_interruptibly`` runs the C call in a worker thread while the
main thread waits where a signal can reach it; on Ctrl-C it cancels the library's
loads, which llama.cpp's progress callback (``llamacpp.native``) answers with
``false`` (the load stops at the next tensor), waits briefly for the worker, and
raises ``KeyboardInterrupt`` within a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from localchat.llamacpp import library

T = TypeVar("T")
POLL_S = 0.05
ABORT_GRACE_S = 0.8  # how long a cancelled load gets to stop before we stop waiting


def cancel_loads() -> None:
    """Stop every llama.cpp load in flight (the app calls this when it quits)."""
    library().cancel_loads()


def loads_cancelled() -> bool:
    return library().loads_cancelled()


def begin_load() -> None:
    """A new load starts: forget an earlier cancel (call once per model load)."""
    library().begin_load()


def run_interruptibly(call: Callable[[], T]) -> T:
    """``call()`` (a blocking C load) in a worker thread; Ctrl-C aborts it promptly."""
    if threading.current_thread() is not threading.main_thread():
        return call()  # signals are not delivered here; cancel_loads() still works
    values: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            values.append(call())
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    worker = threading.Thread(target=work, name="llama-load", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(POLL_S)
    except KeyboardInterrupt:
        cancel_loads()
        worker.join(ABORT_GRACE_S)
        raise
    if errors:
        raise errors[0]
    return values[0]
