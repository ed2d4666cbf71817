"""Built-in formats against the official templates, rendered with plain Jinja, byte for byte."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from localchat.formats import REFLECTION_SYSTEM_PROMPT, builtin_format
from localchat.formats.builtin import HUOZI_ROLES
from localchat.types import Message

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "templates"

# Rendered the way transformers' apply_chat_template and vLLM do.
REFERENCE_ENV = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)


def raise_exception(message: str) -> None:
    raise ValueError(message)


def reference(template: str, messages: list[Message], add_generation_prompt: bool, **extra) -> str:
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    return REFERENCE_ENV.from_string(source).render(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=add_generation_prompt,
        raise_exception=raise_exception,
        **extra,
    )


def conv(*pairs: tuple[str, str]) -> list[Message]:
    return [Message(role=role, content=content) for role, content in pairs]  # type: ignore[arg-type]


CONVERSATIONS = {
    "single user": conv(("user", "Hello")),
    "system + user": conv(
        ("system", "你是一个智能助手"), ("user", "请你用python写一段快速排序的代码")
    ),
    "multi-turn Chinese": conv(
        ("system", "你是一个智能助手，回答要简洁。"),
        ("user", "北京是哪个国家的首都？"),
        ("assistant", "北京是中华人民共和国的首都。"),
        ("user", "那上海呢？\n请用一句话回答。"),
    ),
    "multi-turn, no system": conv(
        ("user", "What is 2+2?"),
        ("assistant", "4"),
        ("user", "And 3+3?  "),
        ("assistant", "  6\n"),
        ("user", "Thanks! 谢谢"),
    ),
    "ends with assistant": conv(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!")),
    "whitespace and tags": conv(
        ("system", "  padded system  \n"),
        ("user", "<b>bold</b> {{ not jinja }} {% raw %}"),
        ("assistant", "ok"),
        ("user", "\n\nline\n"),
    ),
}
CASES = [(name, gen) for name in CONVERSATIONS for gen in (True, False)]


@pytest.mark.parametrize(("name", "gen"), CASES)
def test_huozi3_matches_official_template(name: str, gen: bool) -> None:
    messages = CONVERSATIONS[name]
    huozi_roles = [Message(HUOZI_ROLES[m.role], m.content) for m in messages]  # type: ignore[arg-type]
    expected = reference("huozi3-template.jinja", huozi_roles, gen)
    assert builtin_format("huozi3", "models.toml").render(messages, gen) == expected


def test_huozi3_matches_readme_prompt() -> None:
    messages = CONVERSATIONS["system + user"]
    readme = (
        "<|beginofutterance|>系统\n你是一个智能助手<|endofutterance|>\n"
        "<|beginofutterance|>用户\n请你用python写一段快速排序的代码<|endofutterance|>\n"
        "<|beginofutterance|>助手\n"
    )
    assert builtin_format("huozi3", "models.toml").render(messages) == readme


@pytest.mark.parametrize(("name", "gen"), CASES)
def test_llama31_matches_meta_template(name: str, gen: bool) -> None:
    messages = CONVERSATIONS[name]
    expected = reference(
        "meta-llama-3.1-instruct.jinja", messages, gen, bos_token="<|begin_of_text|>"
    )
    assert builtin_format("llama3.1", "family default").render(messages, gen) == expected


@pytest.mark.parametrize(("name", "gen"), CASES)
def test_llama3_matches_meta_template(name: str, gen: bool) -> None:
    messages = CONVERSATIONS[name]
    expected = reference(
        "meta-llama-3-instruct.jinja", messages, gen, bos_token="<|begin_of_text|>"
    )
    assert builtin_format("llama3", "family default").render(messages, gen) == expected


@pytest.mark.parametrize(("name", "gen"), CASES)
def test_chatml_matches_reference(name: str, gen: bool) -> None:
    messages = CONVERSATIONS[name]
    expected = reference("chatml.jinja", messages, gen)
    assert builtin_format("chatml", "family default").render(messages, gen) == expected


@pytest.mark.parametrize(("name", "gen"), CASES)
def test_gemma_matches_gemma3_template(name: str, gen: bool) -> None:
    messages = CONVERSATIONS[name]
    expected = reference("google-gemma-3-it.jinja", messages, gen, bos_token="<bos>")
    assert builtin_format("gemma", "models.toml").render(messages, gen) == expected


@pytest.mark.parametrize(("name", "gen"), CASES)
def test_reflection_is_llama3_headers_with_official_system_prompt(name: str, gen: bool) -> None:
    messages = CONVERSATIONS[name]
    if messages[0].role != "system":
        expected_messages = [Message("system", REFLECTION_SYSTEM_PROMPT), *messages]
    else:
        expected_messages = messages  # the user's own system prompt replaces the official one
    expected = reference(
        "meta-llama-3-instruct.jinja", expected_messages, gen, bos_token="<|begin_of_text|>"
    )
    assert builtin_format("reflection", "models.toml").render(messages, gen) == expected


def test_reflection_readme_example() -> None:
    rendered = builtin_format("reflection", "models.toml").render(conv(("user", "what is 2+2?")))
    assert rendered == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"{REFLECTION_SYSTEM_PROMPT}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "what is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_reflection_system_prompt_is_the_official_text() -> None:
    assert REFLECTION_SYSTEM_PROMPT == (
        "You are a world-class AI system, capable of complex reasoning and reflection. Reason "
        "through the query inside <thinking> tags, and then provide your final response inside "
        "<output> tags. If you detect that you made a mistake in your reasoning at any point, "
        "correct yourself inside <reflection> tags."
    )
