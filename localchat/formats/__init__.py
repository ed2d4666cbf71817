"""Chat formats: the exact prompt each model was trained on, and how its turn ends.

``resolve_format(entry, metadata)`` picks one per model (models.toml → the
GGUF's sandboxed template → a family default); ``ChatFormat.prompt(messages)``
gives the engine a ``PromptSpec``; ``ChatFormat.reply_parser()`` splits
Reflection's tagged replies as they stream.
"""

from localchat.formats.base import (
    ChatFormat,
    FormatSource,
    ReplyParser,
    ReplyPart,
    StopChecker,
    TemplateError,
    TemplateRejected,
    UnsafeTemplateError,
    make_stop_checker,
)
from localchat.formats.reflection import (
    DEFAULT_VISIBLE_KINDS,
    REFLECTION_SYSTEM_PROMPT,
    ReflectionParser,
    split_reply,
    visible_text,
)
from localchat.formats.resolve import BUILTIN_FORMATS, builtin_format, resolve_format

__all__ = [
    "BUILTIN_FORMATS",
    "DEFAULT_VISIBLE_KINDS",
    "REFLECTION_SYSTEM_PROMPT",
    "ChatFormat",
    "FormatSource",
    "ReflectionParser",
    "ReplyParser",
    "ReplyPart",
    "StopChecker",
    "TemplateError",
    "TemplateRejected",
    "UnsafeTemplateError",
    "builtin_format",
    "make_stop_checker",
    "resolve_format",
    "split_reply",
    "visible_text",
]
