"""Messages any screen posts up to the app.  Messages only one screen posts live on that
screen's class (``ModelsScreen.LoadRequested``, ``HistoryScreen.OpenRequested``, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class ReportError(Message):
    """Something failed: the app shows one line (and logs the traceback).  Safe to post
    from a worker thread."""

    error: BaseException
    doing: str  # "loading the model", "pulling x:Q4_K_M", ...
