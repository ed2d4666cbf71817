"""What ``localchat ask`` does once its options are parsed: load, stream, record.

With ``--schema`` the reply is JSON valid against the schema, enforced by the sampler;
it is printed once whole and checked (stdout holds exactly one JSON document, or nothing
and a one-line error: exit 2 for a schema that cannot be enforced, exit 7 for a reply cut
short by ``--max-tokens`` or the context).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localchat import services
from localchat.errors import ConfigError, Interrupted
from localchat.types import GenerationStats, Message, ReplyFormat, SamplingParams

if TYPE_CHECKING:
    from localchat.services import (
        HistoryStore,
        LoadedModel,
        ReplyParser,
        ReplyPart,
        ReplyRecorder,
    )


@dataclass
class AskRequest:
    prompt: str
    model: str | None = None
    system: str | None = None
    sampling_overrides: dict[str, Any] = field(default_factory=dict)
    n_ctx: int | None = None
    n_threads: int | None = None
    as_json: bool = False
    schema: dict[str, Any] | None = None  # --schema: the reply is JSON valid against it
    show_thinking: bool = False
    continue_last: bool = False
    allow_download: bool = True
    verbose: bool = False
    rpc: str | None = None  # RPC workers "host:port,..."; None: settings.toml's
    link: str | None = None
    engine: str | None = None  # an OpenAI-compatible base URL (--engine)
    local: bool = False  # never a running localchat server (--local)


def read_schema(value: str) -> dict[str, Any]:
    """``--schema``'s JSON schema, given as JSON text or a file's path, checked for what
    the grammar can enforce; ``ConfigError`` (exit 2) naming what is wrong."""
    text = value
    if not value.lstrip().startswith(("{", "[")):  # else a file's path
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"--schema {value}: cannot read it ({reason})") from exc
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"--schema: not valid JSON ({exc})") from exc
    if not isinstance(schema, dict):
        raise ConfigError("--schema: a JSON schema must be a JSON object")
    services.check_structured_request(ReplyFormat(schema, "schema"), None, "--schema")
    return schema


def run_ask(request: AskRequest) -> None:
    services.echo_engine_log(request.verbose)
    with services.HistoryStore() as history:
        previous, conversation_id = _conversation(history, request)
        model = services.open_model(
            request.model or previous.get("model"),
            n_ctx=request.n_ctx,
            n_threads=request.n_threads,
            allow_download=request.allow_download,
            progress=services.StderrProgress(),
            rpc=request.rpc,
            link=request.link,
            engine=request.engine,
            local=request.local,
        )
        with model:
            is_new = conversation_id is None
            if is_new and request.system is None:
                request = replace(request, system=model.system_prompt)
            if conversation_id is None:
                conversation_id = history.new_conversation(
                    model.ref.display_name, system_prompt=request.system
                )
            messages = _messages(previous.get("messages", []), request)
            user_message_id = history.add_message(conversation_id, "user", request.prompt)
            recorder = history.recorder(conversation_id)
            try:
                sampling = _sampling(model, request)
                text = _generate(model, messages, sampling, request, recorder)
                data = _structured_reply(model, text, request) if request.schema else None
            except (Interrupted, BrokenPipeError):
                raise  # the partial reply stays, as documented
            except BaseException:
                _forget_turn(history, conversation_id, user_message_id, whole=is_new)
                raise
            recorder.finish(_stats_dict(model.last_stats), text=text)
            if request.schema is not None:
                _print_structured(model, data, request.as_json, text)
                return
            if request.as_json:
                _print_json(model, text)
            _note_cut_short(model, sampling)


def _note_cut_short(model: LoadedModel, sampling: SamplingParams) -> None:
    """Say on stderr when the reply ended for a limit rather than because it was done."""
    stats = model.last_stats
    limit = sampling.max_tokens
    if stats.finish_reason == "length" and limit and stats.completion_tokens >= limit:
        print(
            f"localchat: stopped at the {limit}-token limit "
            "(--max-tokens N to change it, 0 for no limit)",
            file=sys.stderr,
        )
    elif stats.finish_reason == "length":
        print(
            f"localchat: stopped: the context ({model.n_ctx} tokens) is full (raise --ctx)",
            file=sys.stderr,
        )
    elif stats.finish_reason == "repetition":
        print(
            "localchat: stopped because the reply began to repeat itself "
            "(repetition_guard = false in settings.toml turns this off)",
            file=sys.stderr,
        )


def _forget_turn(
    history: HistoryStore, conversation_id: int, user_message_id: int, *, whole: bool
) -> None:
    """A failed ask leaves no trace: ``ask -c`` must not send it again."""
    if whole:
        history.delete(conversation_id)
    else:
        history.delete_messages_from(conversation_id, user_message_id)


def _conversation(history: HistoryStore, request: AskRequest) -> tuple[dict[str, Any], int | None]:
    """With -c: the last conversation's model and messages, and its id."""
    if not request.continue_last:
        return {}, None
    last = history.latest_conversation()
    if last is None:
        return {}, None
    messages = [m.as_message() for m in history.messages(last.id) if m.content]
    system = [Message("system", last.system_prompt)] if last.system_prompt else []
    return {"model": last.model, "messages": system + messages}, last.id


def _messages(previous: list[Message], request: AskRequest) -> list[Message]:
    messages = list(previous)
    if request.system:
        messages = [m for m in messages if m.role != "system"]
        messages.insert(0, Message("system", request.system))
    messages.append(Message("user", request.prompt))
    return messages


def _sampling(model: LoadedModel, request: AskRequest) -> SamplingParams:
    given = {k: v for k, v in request.sampling_overrides.items() if v is not None}
    return replace(model.default_sampling(), **given)


def _generate(
    model: LoadedModel,
    messages: list[Message],
    sampling: SamplingParams,
    request: AskRequest,
    recorder: ReplyRecorder,
) -> str:
    """Stream to stdout (unless --json or --schema); Ctrl-C keeps what was printed and
    exits 130."""
    parser = None if request.show_thinking else model.reply_parser()
    reply_format = ReplyFormat(request.schema, "schema") if request.schema is not None else None
    stream = model.stream_chat(messages, sampling, reply_format=reply_format)
    quiet = request.as_json or reply_format is not None
    out = _TidyWriter(sys.stdout)
    try:
        for piece in stream:
            recorder.feed(piece)
            if not quiet:
                out.write(_visible(parser, piece))
        if parser is not None and not quiet:
            out.write(_visible_parts(parser.finish()))
    except KeyboardInterrupt:
        stream.close()
        recorder.finish(_stats_dict(model.last_stats))
        if not quiet:
            out.close()
        raise Interrupted("interrupted; the partial reply was kept in history") from None
    except BrokenPipeError:  # `ask ... | head`: the reader has what it wanted
        stream.close()
        recorder.finish(_stats_dict(model.last_stats))
        raise
    finally:
        stream.close()
    if not quiet:
        out.close()
    return recorder.text


def _structured_reply(model: LoadedModel, text: str, request: AskRequest) -> Any:
    """The reply's JSON, or ``EngineError`` (exit 7) saying why it is not whole."""
    visible = services.visible_text(services.split_reply(text)) if model.reply_parser() else text
    return services.parse_reply(visible.strip(), request.schema, model.last_stats)


def _print_structured(model: LoadedModel, data: Any, as_json: bool, text: str) -> None:
    if not as_json:
        print(json.dumps(data, ensure_ascii=False))
        return
    _print_json(model, text, data)


def _visible(parser: ReplyParser | None, piece: str) -> str:
    return piece if parser is None else _visible_parts(parser.feed(piece))


def _visible_parts(parts: list[ReplyPart]) -> str:
    return services.visible_text(parts)


class _TidyWriter:
    """Writes to stdout, flushing each piece, without the whitespace a reply starts or ends with.

    Trailing whitespace is held back until more text follows, so the answer ends
    with exactly one newline (``close``).
    """

    def __init__(self, out: Any) -> None:
        self._out = out
        self._started = False
        self._held = ""

    def write(self, text: str) -> None:
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        if not text:
            return
        body = text.rstrip()
        if body:
            self._out.write(self._held + body)
            self._out.flush()
            self._held = ""
        self._held += text[len(body) :]

    def close(self) -> None:
        self._out.write("\n")
        self._out.flush()


def _stats_dict(stats: GenerationStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "time_to_first_token_s": _round(stats.time_to_first_token_s),
        "decode_tokens_per_s": _round(stats.decode_tokens_per_s),
        "total_s": _round(stats.total_s),
        "finish_reason": stats.finish_reason,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _print_json(model: LoadedModel, text: str, data: Any = None) -> None:
    payload: dict[str, Any] = {
        "text": text,
        "model": model.ref.display_name,
        "file": str(model.path) if model.path is not None else None,
        "engine": model.engine_label,
        "quant": model.quant,
        "plan": model.plan_summary,
        **_stats_dict(model.last_stats),
    }
    if model.reply_parser() is not None:
        parts = services.split_reply(text)
        payload["text"] = services.visible_text(parts)
        payload["raw_text"] = text
        payload["parts"] = [{"kind": part.kind, "text": part.text} for part in parts]
    if data is not None:
        payload["data"] = data  # --schema: the reply's JSON, parsed
    json.dump(payload, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
