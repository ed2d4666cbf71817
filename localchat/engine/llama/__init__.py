"""The llama.cpp backend (``LlamaBackend``): slots, continuous batching, prompt cache.

``backend`` is the ``engine.base.Backend``; ``loader`` loads a GGUF as the settings say;
``scheduler`` is the decode thread over the slots (``slots``); ``timing`` runs
``localchat bench``'s measurements.  Importing this package loads llama.cpp.
"""

from __future__ import annotations

from localchat.engine.llama.backend import LlamaBackend

__all__ = ["LlamaBackend"]
