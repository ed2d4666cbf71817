"""llama.cpp's log as the layers above the engine see it: ``ROUTER.echo_to_stderr``
(``--verbose``) also shows it on stderr.  The router itself lives with the llama.cpp
library object (``llamacpp.log``); setting it up loads nothing."""

from __future__ import annotations

from localchat.llamacpp import library

ROUTER = library().log
