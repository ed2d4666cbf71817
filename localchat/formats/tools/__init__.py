"""Tool calls per chat format: the prompt with the tools, the grammar for the calls, where
a call starts, and a streaming parser that splits the reply into text and ``ToolCall``s.

``tool_prompt(fmt, messages, tools, tool_choice, parallel)`` is the one entry point;
``supports_native_tools(fmt)`` / ``tool_syntax(fmt)`` say what ``show`` reports.  Native
syntaxes (Hermes/Qwen 2.5, Llama 3.x, Mistral Nemo) are recognised from the model's own
template; every other format uses the generic JSON fallback.
"""

from localchat.formats.tools.base import (
    FunctionChoice,
    ToolCallParser,
    ToolChoice,
    ToolEvent,
    ToolPrompt,
)
from localchat.formats.tools.prompt import (
    native_syntax,
    supports_native_tools,
    tool_prompt,
    tool_syntax,
)

__all__ = [
    "FunctionChoice",
    "ToolCallParser",
    "ToolChoice",
    "ToolEvent",
    "ToolPrompt",
    "native_syntax",
    "supports_native_tools",
    "tool_prompt",
    "tool_syntax",
]
