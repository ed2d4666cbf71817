"""Built-in chat formats, each byte-identical to its authors' official template.

The reference templates live in ``tests/fixtures/templates/``; the tests render
them with plain Jinja and compare byte for byte.

- ``huozi3``: HIT-SCIR huozi ``example/openai-api/template.jinja`` with the
  roles 系统/用户/助手; stops at ``<|endofutterance|>`` (57001), not at eos.
- ``llama3``: Meta-Llama-3-Instruct's template.
- ``llama3.1``: Meta Llama-3.1-Instruct's template without tools (its system
  header always carries the knowledge-cutoff lines and the fixed date).
- ``gemma``: Gemma 3's template (system text folded into the first user turn).
- ``chatml``: ``<|im_start|>role ... <|im_end|>`` (Qwen 2/2.5).
- ``raw``: no template at all: the message texts joined by blank lines.
- ``completion``: for base (not instruction-tuned) models: the system text, then
  ``Question: ...`` / ``Answer: ...`` turns; a base model continues the last answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from localchat.formats.base import (
    ChatFormat,
    FormatSource,
    Renderer,
    TemplateRejected,
    require_messages,
)
from localchat.types import Message

HUOZI_BEGIN = "<|beginofutterance|>"
HUOZI_END = "<|endofutterance|>"
HUOZI_END_ID = 57001
HUOZI_ROLES = {"system": "系统", "user": "用户", "assistant": "助手"}

LLAMA3_BOS = "<|begin_of_text|>"
LLAMA3_EOT = "<|eot_id|>"
LLAMA3_STOPS = {"<|eot_id|>": 128009, "<|eom_id|>": 128008, "<|end_of_text|>": 128001}
LLAMA31_DATE = "26 Jul 2024"  # the date Meta's 3.1 template uses when none is given

GEMMA_BOS = "<bos>"
GEMMA_END = "<end_of_turn>"
GEMMA_END_ID = 106

# A base model does not know when an answer is done: a short default limit (README).
BASE_MODEL_MAX_TOKENS = 256

CHATML_END = "<|im_end|>"
CHATML_END_ID = 151645  # Qwen 2 / 2.5 vocabularies


def render_huozi3(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    require_messages(messages)
    out = []
    for index, message in enumerate(messages):
        last = index == len(messages) - 1
        out.append(f"{HUOZI_BEGIN}{HUOZI_ROLES[message.role]}\n{message.content}")
        if not last or add_generation_prompt:
            out.append(f"{HUOZI_END}\n")
    if add_generation_prompt and messages[-1].role != "assistant":
        out.append(f"{HUOZI_BEGIN}助手\n")
    return "".join(out)


def _llama3_turn(role: str, content: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}{LLAMA3_EOT}"


def _llama3_generation_prompt(add_generation_prompt: bool) -> str:
    return "<|start_header_id|>assistant<|end_header_id|>\n\n" if add_generation_prompt else ""


def make_llama3_renderer(bos_token: str = LLAMA3_BOS) -> Renderer:
    def render_llama3(messages: Sequence[Message], add_generation_prompt: bool) -> str:
        turns = [_llama3_turn(m.role, m.content) for m in messages]
        if turns:
            turns[0] = bos_token + turns[0]
        return "".join(turns) + _llama3_generation_prompt(add_generation_prompt)

    return render_llama3


def make_llama31_renderer(bos_token: str = LLAMA3_BOS, date_string: str = LLAMA31_DATE) -> Renderer:
    def render_llama31(messages: Sequence[Message], add_generation_prompt: bool) -> str:
        rest = list(messages)
        system = ""
        if rest and rest[0].role == "system":
            system = rest.pop(0).content.strip()
        header = (
            f"{bos_token}<|start_header_id|>system<|end_header_id|>\n\n"
            f"Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n"
            f"{system}{LLAMA3_EOT}"
        )
        turns = "".join(_llama3_turn(m.role, m.content) for m in rest)
        return header + turns + _llama3_generation_prompt(add_generation_prompt)

    return render_llama31


def make_gemma_renderer(bos_token: str = GEMMA_BOS) -> Renderer:
    def render_gemma(messages: Sequence[Message], add_generation_prompt: bool) -> str:
        require_messages(messages)
        rest = list(messages)
        prefix = ""
        if rest[0].role == "system":
            prefix = rest.pop(0).content + "\n\n"
        out = [bos_token]
        for index, message in enumerate(rest):
            if (message.role == "user") != (index % 2 == 0):
                raise TemplateRejected(
                    "Conversation roles must alternate user/assistant/user/assistant/...",
                    hint="Gemma takes one optional system message, then alternating turns",
                )
            role = "model" if message.role == "assistant" else message.role
            first = prefix if index == 0 else ""
            out.append(f"<start_of_turn>{role}\n{first}{message.content.strip()}{GEMMA_END}\n")
        if add_generation_prompt:
            out.append("<start_of_turn>model\n")
        return "".join(out)

    return render_gemma


def render_chatml(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}{CHATML_END}\n" for m in messages)
    return turns + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def render_raw(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    return "\n\n".join(m.content for m in messages)


def render_completion(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    labels = {"user": "Question", "assistant": "Answer"}
    blocks = [
        m.content if m.role == "system" else f"{labels[m.role]}: {m.content}" for m in messages
    ]
    text = "\n".join(blocks)
    return text + ("\nAnswer:" if add_generation_prompt else "")


def huozi3_format(source: FormatSource) -> ChatFormat:
    return ChatFormat(
        name="huozi3",
        source=source,
        renderer=render_huozi3,
        stop_strings=(HUOZI_END,),
        stop_token_ids=(HUOZI_END_ID,),
        default_sampling={"temperature": 0.8, "top_p": 0.9},
        description="huozi3 utterances (系统/用户/助手), stop at <|endofutterance|>",
    )


def llama3_format(source: FormatSource, bos_token: str = "") -> ChatFormat:
    bos = bos_token or LLAMA3_BOS
    return ChatFormat(
        name="llama3",
        source=source,
        renderer=make_llama3_renderer(bos),
        stop_strings=("<|eot_id|>", "<|end_of_text|>"),
        stop_token_ids=(128009, 128001),
        bos_token=bos,
        description="Llama 3 header format (<|start_header_id|>...<|eot_id|>)",
    )


def llama31_format(source: FormatSource, bos_token: str = "") -> ChatFormat:
    bos = bos_token or LLAMA3_BOS
    return ChatFormat(
        name="llama3.1",
        source=source,
        renderer=make_llama31_renderer(bos),
        stop_strings=tuple(LLAMA3_STOPS),
        stop_token_ids=tuple(LLAMA3_STOPS.values()),
        bos_token=bos,
        description="Llama 3.1 header format with the knowledge-cutoff system header",
    )


def gemma_format(source: FormatSource, bos_token: str = "") -> ChatFormat:
    bos = bos_token or GEMMA_BOS
    return ChatFormat(
        name="gemma",
        source=source,
        renderer=make_gemma_renderer(bos),
        stop_strings=(GEMMA_END,),
        stop_token_ids=(GEMMA_END_ID,),
        bos_token=bos,
        description="Gemma turns (<start_of_turn>user/model ... <end_of_turn>)",
    )


def chatml_format(source: FormatSource, qwen_vocab: bool = False) -> ChatFormat:
    """``qwen_vocab``: the model uses Qwen's vocabulary, where <|im_end|> is 151645."""
    return ChatFormat(
        name="chatml",
        source=source,
        renderer=render_chatml,
        stop_strings=(CHATML_END,),
        stop_token_ids=(CHATML_END_ID,) if qwen_vocab else (),
        description="ChatML (<|im_start|>role ... <|im_end|>)",
    )


def raw_format(source: FormatSource) -> ChatFormat:
    return ChatFormat(
        name="raw",
        source=source,
        renderer=render_raw,
        description="plain completion: message texts joined by blank lines, no roles",
    )


def completion_format(source: FormatSource) -> ChatFormat:
    return ChatFormat(
        name="completion",
        source=source,
        renderer=render_completion,
        stop_strings=("\nQuestion:", "\nAnswer:"),
        default_sampling={"max_tokens": BASE_MODEL_MAX_TOKENS},
        description="base-model completion: Question:/Answer: turns, stop at the next question",
    )
