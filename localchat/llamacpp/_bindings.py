"""llama-cpp-python's ctypes bindings, imported once, here, and nowhere else in localchat.

Importing this module loads llama.cpp's native libraries, so only the heavy modules of
this package import it (``native``, ``model``, ``context``, ``batch``, ``sampler``), and
those are imported only when a model or the build is read.

``GGML_NO_BACKTRACE`` is set before the libraries load: on an abort ggml otherwise
attaches gdb to the process and ~10 KB of backtrace lands on stdout, where ``ask``
writes the answer.  ggml reads it when it aborts, so it holds for every thread.
"""

from __future__ import annotations

import os

from localchat.errors import BackendUnavailable

os.environ.setdefault("GGML_NO_BACKTRACE", "1")

try:
    import llama_cpp as package
    from llama_cpp import llama_cpp as C
    from llama_cpp import llama_grammar as grammar_module
except ImportError as exc:
    raise BackendUnavailable(
        "llama-cpp-python is not installed",
        hint='install it: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python',
    ) from exc
except OSError as exc:  # the shared library failed to load
    raise BackendUnavailable(
        f"llama-cpp-python is installed but its library failed to load ({exc})",
        hint="reinstall it; see `localchat doctor`",
    ) from exc

__all__ = ["C", "grammar_module", "package"]
