"""llama.cpp's ctypes, owned in one place: the only package that imports ``llama_cpp``.

Importing this package loads nothing native.  ``library()`` is the process's one
library object: its log router, load-cancel flag and fatal-error policy can be set
before llama.cpp loads; ``library().native`` loads it once (``native``) with the
callbacks installed, ggml's device API typed (``ggml``) and the RPC registry
(``rpc``).  Models, contexts, batches and samplers (``model``, ``context``, ``batch``,
``sampler``) are the typed wrappers the engine runs on; importing those modules loads
llama.cpp, so only the engine's backend, which is itself imported at load, does.
"""

from __future__ import annotations

from localchat.llamacpp.ggml import Device, DeviceKind
from localchat.llamacpp.library import LlamaCppLibrary, library
from localchat.llamacpp.log import LlamaLogRouter

__all__ = ["Device", "DeviceKind", "LlamaCppLibrary", "LlamaLogRouter", "library"]
