"""``localchat serve``: the OpenAI- and Ollama-compatible HTTP server over ``localchat.api``.

``build_app(config)`` is the ASGI app (``server.app``); ``run_server(config)`` serves
it with uvicorn.  Routes live in ``openai_api`` and ``ollama_api``, the loaded models
in ``pool``, the error → status map in ``http_errors``.
"""

from localchat.server.config import ServerConfig


def run_server(config: ServerConfig) -> None:
    from localchat.server.run import run_server as run

    run(config)


__all__ = ["ServerConfig", "run_server"]
