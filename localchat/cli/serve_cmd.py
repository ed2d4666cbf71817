"""``localchat serve``: one warm engine for ``ask``, the app and any OpenAI or Ollama client."""

from __future__ import annotations

import click

from localchat.addresses import parse_endpoints, parse_link
from localchat.cli.options import link_option, rpc_option
from localchat.cli.slots_option import SlotCount
from localchat.settings import PARALLEL_AUTO, load_settings

SERVE_EPILOG = """
\b
Examples:
  localchat serve                            # http://127.0.0.1:11435
  localchat serve --keep-alive 30m
  localchat serve --host 0.0.0.0 --api-key "$KEY" --cors https://chat.example
\b
Clients:
  OpenAI SDK:  OpenAI(base_url="http://127.0.0.1:11435/v1", api_key="KEY or anything")
  Ollama:      OLLAMA_HOST=127.0.0.1:11435 oterm    (host:port, no http://)
  localchat:   `ask` and the app use a running server by itself (--local: never)
"""


@click.command(epilog=SERVE_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default: 11435].")
@click.option("--api-key", envvar="LOCALCHAT_API_KEY", help="Require this Bearer key.")
@click.option("--cors", "cors", multiple=True, metavar="ORIGIN", help="Allow this browser origin.")
@click.option("--keep-alive", default="5m", show_default=True, help="Keep idle models this long.")
@click.option(
    "--max-queue",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Requests that may wait for one model; more get HTTP 503.",
)
@click.option(
    "--max-models",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Models loaded at once (the least recently used idle one unloads).",
)
@click.option("--max-body-mb", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--max-prompt-chars", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--threads", type=click.IntRange(1), help="llama.cpp threads per model.")
@click.option(
    "--parallel",
    type=SlotCount(),
    default=None,
    help="Replies each model generates at once (slots), or auto: as many as memory and "
    "the predicted speed allow [default: settings.toml's parallel, else auto].",
)
@click.option("--no-pull", is_flag=True, help="Never download a model a request names.")
@click.option(
    "--history",
    "record_history",
    is_flag=True,
    help="Save every exchange in localchat's history (as `ask` and the app do).",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(0.1, 3600),
    default=10,
    show_default=True,
    help="Seconds a client has to send a request's headers, then its body.",
)
@click.option(
    "--quiet", is_flag=True, help="No request log lines on stderr (serve.log keeps them)."
)
@click.option(
    "--insecure-no-api-key",
    is_flag=True,
    help="Serve a non-loopback address WITHOUT a key: anyone who reaches it can use it.",
)
@rpc_option
@link_option
def serve(
    host: str,
    port: int | None,
    api_key: str | None,
    cors: tuple[str, ...],
    keep_alive: str,
    max_queue: int,
    max_models: int,
    max_body_mb: int,
    max_prompt_chars: int,
    threads: int | None,
    parallel: int | str | None,
    no_pull: bool,
    record_history: bool,
    request_timeout: float,
    quiet: bool,
    insecure_no_api_key: bool,
    rpc: str | None,
    link: str | None,
) -> None:
    """Serve models over HTTP: OpenAI API (/v1) and Ollama API (/api)."""
    from localchat.protocol.ollama import parse_duration_s
    from localchat.server import ServerConfig, run_server
    from localchat.server.config import DEFAULT_KEEP_ALIVE_S, DEFAULT_PORT

    config = ServerConfig(
        host=host,
        port=port or DEFAULT_PORT,
        api_key=api_key or None,
        cors_origins=cors,
        keep_alive_s=parse_duration_s(keep_alive, DEFAULT_KEEP_ALIVE_S),
        max_queue_per_model=max_queue,
        max_loaded_models=max_models,
        max_body_bytes=max_body_mb * 2**20,
        max_prompt_chars=max_prompt_chars,
        allow_download=not no_pull,
        record_history=record_history,
        request_timeout_s=request_timeout,
        quiet=quiet,
        insecure_no_api_key=insecure_no_api_key,
        n_threads=threads,
        parallel=parallel if parallel is not None else _settings_parallel(),
        rpc=rpc,
        link=link,
    )
    _check_workers(rpc, link)
    run_server(config)


def _settings_parallel() -> int | str:
    """settings.toml's ``parallel`` (checked when the settings load), else "auto"."""
    return load_settings().parallel or PARALLEL_AUTO


def _check_workers(rpc: str | None, link: str | None) -> None:
    """Malformed --rpc/--link fail now, not at the first request (workers are probed then)."""

    parse_endpoints(rpc)
    if link:
        parse_link(link)
