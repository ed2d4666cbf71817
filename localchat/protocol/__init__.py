"""The wire protocol: OpenAI's and Ollama's HTTP APIs as pydantic models, both directions.

``localchat serve`` reads requests and writes replies with these models; the remote-engine
client (``engine.remote_engine``) writes requests and reads replies with the same ones, so
the two sides cannot drift.  Each validation rule is stated once (``base``), chat messages
are parsed in one place (``messages``), what is parsed but not done yet is refused in one
table (``refusals``), and errors map to statuses and codes in one table (``errors``).

- ``openai``: chat completions, completions, embeddings, models, chunks, usage, errors.
- ``ollama``: chat, generate, embed, embeddings; ``ollama_models``: tags, ps, show, pull, version.
- ``decode.parse_request(raw, Model)``: bytes to a checked request, or one ``InvalidRequest``.
"""

from localchat.protocol.base import SERVER_DEFAULT_MODEL, required_model_name
from localchat.protocol.decode import parse_json, parse_request, validate
from localchat.protocol.errors import (
    error_from_response,
    error_from_stream,
    http_status,
    ollama_error,
    openai_error,
)
from localchat.protocol.messages import parse_messages

__all__ = [
    "SERVER_DEFAULT_MODEL",
    "error_from_response",
    "error_from_stream",
    "http_status",
    "ollama_error",
    "openai_error",
    "parse_json",
    "parse_messages",
    "parse_request",
    "required_model_name",
    "validate",
]
