"""``localchat serve``: the OpenAI- and Ollama-compatible HTTP server over ``localchat.api``.

``build_app(config)`` is the ASGI app (``server.app``); ``run_server(config)`` serves
it with uvicorn.  Routes live in ``openai_api`` and ``ollama_api`` (over the wire models
of ``localchat.protocol``), the loaded models in ``pool``, generation in ``generation``,
the connection deadlines in ``connections``, the request log in ``request_log``.
"""

from localchat.server.config import ServerConfig


def run_server(config: ServerConfig) -> None:
    from localchat.server.run import run_server as run

    run(config)


__all__ = ["ServerConfig", "run_server"]
