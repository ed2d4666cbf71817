"""Ctrl-C during a llama.cpp load.

Python runs signal handlers in the main thread between bytecodes.  A load that
runs in the main thread spends its time in C, where the only Python code that
runs is llama.cpp's log callback: the ``KeyboardInterrupt`` lands there, ctypes
prints "Exception ignored on calling ctypes callback function" and the load
goes on.  So ``run_interruptibly`` runs the C call in a worker thread while the
main thread waits where a signal can reach it; on Ctrl-C it raises the load's
abort flag, which llama.cpp's progress callback returns (``false`` stops the
load at the next tensor), waits briefly for the worker, and raises
``KeyboardInterrupt`` within a second.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
POLL_S = 0.05
ABORT_GRACE_S = 0.8  # how long a cancelled load gets to stop before we stop waiting

_cancel = threading.Event()  # set: every load in flight stops at its next progress step


def cancel_loads() -> None:
    """Stop every llama.cpp load in flight (the app calls this when it quits)."""
    _cancel.set()


def loads_cancelled() -> bool:
    return _cancel.is_set()


def begin_load() -> None:
    """A new load starts: forget an earlier cancel (call once per model load)."""
    _cancel.clear()


def run_interruptibly(call: Callable[[], T]) -> T:
    """``call()`` (a blocking C load) in a worker thread; Ctrl-C aborts it promptly."""
    if threading.current_thread() is not threading.main_thread():
        return call()  # signals are not delivered here; cancel_loads() still works
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="llama-load", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(POLL_S)
    except KeyboardInterrupt:
        _cancel.set()
        worker.join(ABORT_GRACE_S)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def abortable_load(llama_cpp: Any) -> Iterator[None]:
    """While active, ``llama_cpp.Llama(...)`` loads with a progress callback that
    returns false once ``cancel_loads()`` (or Ctrl-C in ``run_interruptibly``) asked."""
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params
    callback = _progress_callback(module)

    def with_progress() -> Any:
        params = original()
        params.progress_callback = callback
        params.progress_callback_user_data = ctypes.c_void_p(0)
        return params

    module.llama_model_default_params = with_progress
    try:
        yield
    finally:
        module.llama_model_default_params = original


_callback: Any = None  # module-level: a load abandoned after Ctrl-C may still call it


def _progress_callback(module: Any) -> Any:
    global _callback
    if _callback is None:
        _callback = module.llama_progress_callback(_keep_going)
    return _callback


def _keep_going(progress: float, user_data: Any) -> bool:
    try:
        return not _cancel.is_set()
    except BaseException:  # a C callback must never raise
        return False
