"""The terminal app.  ``run_app`` imports Textual only when called."""

from __future__ import annotations

import os
from functools import partial

from localchat.tui.fake import scripted_loader
from localchat.tui.model import Loader
from localchat.tui.services import open_model


def run_app(model: str | None = None, engine: str | None = None, local: bool = False) -> None:
    """Open the app (with ``model`` loaded, when given) and run until the user quits.

    ``LOCALCHAT_FAKE_ENGINE=1`` swaps llama.cpp for the scripted model (tests, demos).
    """
    from localchat.tui.app import LocalchatApp  # Textual: heavy, loaded only to run the app

    loader: Loader | None = None
    if os.environ.get("LOCALCHAT_FAKE_ENGINE"):
        rate = float(os.environ.get("LOCALCHAT_FAKE_TOKENS_PER_S", "200"))
        loader = scripted_loader(tokens_per_s=rate)
    if loader is None and (engine or local):  # else open_model's own choice (engine.endpoints)
        loader = partial(open_model, engine=engine, local=local)
    LocalchatApp(model=model, loader=loader).run()
