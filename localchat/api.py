"""localchat as a Python package: open a model by name, stream a chat, read the stats.

    from localchat.api import open_model
    from localchat.types import Message

    model = open_model("qwen2.5-0.5b")            # catalog name, owner/repo[:QUANT], or a path
    for piece in model.stream_chat([Message("user", "Hello")]):
        print(piece, end="", flush=True)
    print(model.last_stats.decode_tokens_per_s)
    model.close()

    from localchat.api import embed
    vectors = embed(["a cat", "a dog"], model="nomic-embed-text-v1.5")   # unit-length lists

MODEL forms are those of ``localchat ask -m``.  Errors are ``localchat.errors``
exceptions.  This is the public face of ``localchat.services``, the layer the CLI, the
app and the server are built on.
"""

from __future__ import annotations

from localchat.services.embed import Embeddings, EmbedOptions, embed_inputs, embed_texts
from localchat.services.model import DEFAULT_MAX_TOKENS, LoadedModel, Notice, OpenOptions
from localchat.services.open import cancel_loads, open_model
from localchat.services.resolve import ModelRef, resolve_model

resolve_ref = resolve_model  # the name earlier versions used
embed = embed_texts  # localchat.embed(texts, model=...): the short name

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EmbedOptions",
    "Embeddings",
    "LoadedModel",
    "ModelRef",
    "Notice",
    "OpenOptions",
    "cancel_loads",
    "embed",
    "embed_inputs",
    "embed_texts",
    "open_model",
    "resolve_model",
    "resolve_ref",
]
