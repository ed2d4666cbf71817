"""The one door to localchat for the CLI, the app, the server and the Python API.

    ref, _ = resolve_model("huozi3:Q4_0")          # MODEL → ModelRef, checked once
    installed_models() / named_models()            # what is on disk (and clients' names)
    show_model(MODEL) -> ModelInfo                 # format, metadata, chat format
    pull_model(MODEL, progress=...) -> LocalModel  # resumable, verified
    removal_for(MODEL) / remove_models(removal)    # which files MODEL means, then delete
    open_model(MODEL, n_ctx=...) -> LoadedModel    # in process, or a server / remote engine
    embed_texts(texts, model=...) / embed_inputs(loaded, inputs, EmbedOptions(...))  # vectors
    model.structured(messages, schema) / model.call_tools(messages, tools)
    plan_model(MODEL, hardware, request) -> Plan   # before downloading, what-if machines too
    search_models(SearchRequest("llama"), hardware) # hub repos, each with its verdict here
    detect_hardware() / run_doctor() / run_bench(BenchRequest(...))

Frontends import this package (and ``types``, ``errors``, ``units``, ``paths``,
``settings``), nothing deeper.  Names load on first use (PEP 562), so importing the
package is cheap: ``localchat --help`` loads none of the planner, the hub or the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localchat.engine.rpc import set_fatal_handler
    from localchat.engine.rpc_server import RunningWorker, redirect_native_stdout, start_worker
    from localchat.formats import ChatFormat, ReplyParser, ReplyPart, split_reply, visible_text
    from localchat.history import Conversation, HistoryStore, ReplyRecorder, StoredMessage
    from localchat.hub.progress import ProgressCallback, PullProgress, StderrProgress
    from localchat.services.bench import BenchRequest, BenchResult, run_bench
    from localchat.services.browse import (
        CatalogEntry,
        catalog_entries,
        hub_quants,
        listed_quants,
    )
    from localchat.services.doctor import CheckResult, run_doctor
    from localchat.services.embed import (
        Embeddings,
        EmbedOptions,
        check_embeds,
        embed_inputs,
        embed_texts,
        normalized,
    )
    from localchat.services.hardware import (
        AmxStatus,
        BuildCode,
        CpuInfo,
        GpuInfo,
        Hardware,
        LlamaBuildInfo,
        build_code,
        detect_hardware,
        hardware_json,
    )
    from localchat.services.installed import client_name, installed_models, named_models
    from localchat.services.logs import echo_engine_log
    from localchat.services.model import DEFAULT_MAX_TOKENS, LoadedModel, OpenOptions
    from localchat.services.open import cancel_loads, open_model
    from localchat.services.plan import (
        Plan,
        PlanRequest,
        WhatIf,
        plan_hardware,
        plan_model,
        settings_threads,
    )
    from localchat.services.pull import pull_model
    from localchat.services.remove import Removal, removal_for, remove_models
    from localchat.services.resolve import ModelRef, find_on_disk, resolve_model, with_quant
    from localchat.services.search import (
        SEARCH_SORTS,
        HubRepo,
        SearchHit,
        SearchOutcome,
        SearchRequest,
        Verdict,
        quant_options,
        search_models,
    )
    from localchat.services.show import ModelInfo, messages_from_json, show_model
    from localchat.services.structured import (
        THINKING_KINDS,
        PreparedChat,
        ReplySplitter,
        check_structured_request,
        render_chat,
        tool_support,
    )
    from localchat.services.structured_api import ToolReply, parse_reply
    from localchat.store import LocalModel

# module (under ``localchat.``) -> the names it gives this package
_SOURCES: dict[str, tuple[str, ...]] = {
    "engine.rpc": ("set_fatal_handler",),  # an RPC worker lost inside native code
    "engine.rpc_server": ("RunningWorker", "redirect_native_stdout", "start_worker"),
    "formats": ("ChatFormat", "ReplyParser", "ReplyPart", "split_reply", "visible_text"),
    "history": ("Conversation", "HistoryStore", "ReplyRecorder", "StoredMessage"),
    "hub.progress": ("ProgressCallback", "PullProgress", "StderrProgress"),
    "services.bench": ("BenchRequest", "BenchResult", "run_bench"),
    "services.browse": ("CatalogEntry", "catalog_entries", "hub_quants", "listed_quants"),
    "services.doctor": ("CheckResult", "run_doctor"),
    "services.embed": (
        "EmbedOptions",
        "Embeddings",
        "check_embeds",
        "embed_inputs",
        "embed_texts",
        "normalized",
    ),
    "services.hardware": (
        "AmxStatus",
        "BuildCode",
        "CpuInfo",
        "GpuInfo",
        "Hardware",
        "LlamaBuildInfo",
        "build_code",
        "detect_hardware",
        "hardware_json",
    ),
    "services.installed": ("client_name", "installed_models", "named_models"),
    "services.logs": ("echo_engine_log",),
    "services.model": ("DEFAULT_MAX_TOKENS", "LoadedModel", "OpenOptions"),
    "services.open": ("cancel_loads", "open_model"),
    "services.plan": (
        "Plan",
        "PlanRequest",
        "WhatIf",
        "plan_hardware",
        "plan_model",
        "settings_threads",
    ),
    "services.pull": ("pull_model",),
    "services.remove": ("Removal", "removal_for", "remove_models"),
    "services.resolve": ("ModelRef", "find_on_disk", "resolve_model", "with_quant"),
    "services.search": (
        "SEARCH_SORTS",
        "HubRepo",
        "SearchHit",
        "SearchOutcome",
        "SearchRequest",
        "Verdict",
        "quant_options",
        "search_models",
    ),
    "services.show": ("ModelInfo", "messages_from_json", "show_model"),
    "services.structured": (
        "THINKING_KINDS",
        "PreparedChat",
        "ReplySplitter",
        "check_structured_request",
        "render_chat",
        "tool_support",
    ),
    "services.structured_api": ("ToolReply", "parse_reply"),
    "store": ("LocalModel",),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [  # every name in _SOURCES (a test keeps the two equal)
    "DEFAULT_MAX_TOKENS",
    "SEARCH_SORTS",
    "THINKING_KINDS",
    "AmxStatus",
    "BenchRequest",
    "BenchResult",
    "BuildCode",
    "CatalogEntry",
    "ChatFormat",
    "CheckResult",
    "Conversation",
    "CpuInfo",
    "EmbedOptions",
    "Embeddings",
    "GpuInfo",
    "Hardware",
    "HistoryStore",
    "HubRepo",
    "LlamaBuildInfo",
    "LoadedModel",
    "LocalModel",
    "ModelInfo",
    "ModelRef",
    "OpenOptions",
    "Plan",
    "PlanRequest",
    "PreparedChat",
    "ProgressCallback",
    "PullProgress",
    "Removal",
    "ReplyParser",
    "ReplyPart",
    "ReplyRecorder",
    "ReplySplitter",
    "RunningWorker",
    "SearchHit",
    "SearchOutcome",
    "SearchRequest",
    "StderrProgress",
    "StoredMessage",
    "ToolReply",
    "Verdict",
    "WhatIf",
    "build_code",
    "cancel_loads",
    "catalog_entries",
    "check_embeds",
    "check_structured_request",
    "client_name",
    "detect_hardware",
    "echo_engine_log",
    "embed_inputs",
    "embed_texts",
    "find_on_disk",
    "hardware_json",
    "hub_quants",
    "installed_models",
    "listed_quants",
    "messages_from_json",
    "named_models",
    "normalized",
    "open_model",
    "parse_reply",
    "plan_hardware",
    "plan_model",
    "pull_model",
    "quant_options",
    "redirect_native_stdout",
    "removal_for",
    "remove_models",
    "render_chat",
    "resolve_model",
    "run_bench",
    "run_doctor",
    "search_models",
    "set_fatal_handler",
    "settings_threads",
    "show_model",
    "split_reply",
    "start_worker",
    "tool_support",
    "visible_text",
    "with_quant",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'localchat.services' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"localchat.{module}"), name)
    globals()[name] = value  # later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return list(__all__)
