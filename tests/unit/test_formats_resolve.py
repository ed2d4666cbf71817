"""Resolution order, GGUF templates in the sandbox, hostile templates, stop specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat.catalog import load_catalog
from localchat.errors import ConfigError
from localchat.formats import (
    TemplateError,
    TemplateRejected,
    UnsafeTemplateError,
    make_stop_checker,
    resolve_format,
)
from localchat.gguf.metadata import read_gguf_metadata
from localchat.types import Message

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "templates"
LLAMA31 = (TEMPLATES / "meta-llama-3.1-instruct.jinja").read_text(encoding="utf-8")
GEMMA3 = (TEMPLATES / "google-gemma-3-it.jinja").read_text(encoding="utf-8")

CONVERSATION = [
    Message("system", "你是一个智能助手"),
    Message("user", "你好"),
    Message("assistant", "你好！有什么可以帮你？"),
    Message("user", "讲个笑话"),
]
LLAMA_META = {
    "general.architecture": "llama",
    "tokenizer.bos_token": "<|begin_of_text|>",
    "tokenizer.eos_token": "<|eot_id|>",
    "tokenizer.ggml.bos_token_id": 128000,
    "tokenizer.ggml.eos_token_id": 128009,
}

HOSTILE = {
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler globals": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "item syntax": "{{ ''['__class__']['__mro__'] }}",
    "attr filter": "{{ (''|attr('__class__')) }}",
    "dynamic attr": "{% set n = '__cla' ~ 'ss__' %}{{ ''|attr(n) }}",
    "include file": "{% include '/etc/passwd' %}",
    "import": "{% import '/etc/passwd' as x %}{{ x }}",
    "extends": "{% extends '/etc/hostname' %}",
    "mutate": "{% set x = messages.append({'role': 'user'}) %}{{ x }}",
    "format string": "{{ '{0.__class__}'.format('') }}",
    "range bomb": "{% for i in range(10**9) %}x{% endfor %}",
    "output bomb": "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
}


def write_gguf(path: Path, template: str | None, arch: str = "llama", **kv) -> Path:
    """A metadata-only GGUF (no tensors) carrying a chat template."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(kv.pop("name", "test model"))
    if template is not None:
        writer.add_chat_template(template)
    tokens = kv.pop("tokens", None)
    if tokens:
        writer.add_token_list(tokens)
        writer.add_bos_token_id(kv.pop("bos_id", 0))
        writer.add_eos_token_id(kv.pop("eos_id", 1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_explicit_format_wins_over_gguf_template() -> None:
    entry = load_catalog().get("huozi3")
    fmt = resolve_format(entry, {**LLAMA_META, "tokenizer.chat_template": LLAMA31})
    assert (fmt.name, fmt.source) == ("huozi3", "models.toml")


def test_explicit_format_wins_even_over_a_hostile_template() -> None:
    entry = load_catalog().get("reflection-70b")
    fmt = resolve_format(entry, {"tokenizer.chat_template": HOSTILE["subclasses"]})
    assert (fmt.name, fmt.source) == ("reflection", "models.toml")


def test_gguf_template_used_when_format_is_gguf() -> None:
    entry = load_catalog().get("nemotron-70b")
    fmt = resolve_format(entry, {**LLAMA_META, "tokenizer.chat_template": LLAMA31})
    assert fmt.source == "gguf"
    builtin = resolve_format(entry, LLAMA_META)  # no template: the family default
    assert builtin.source == "family default" and builtin.name == "llama3.1"
    assert fmt.render(CONVERSATION) == builtin.render(CONVERSATION)
    spec = fmt.prompt(CONVERSATION)
    assert "<|eot_id|>" in spec.stop_strings and 128009 in spec.stop_token_ids
    assert spec.has_bos and spec.text.startswith("<|begin_of_text|>")


def test_family_defaults() -> None:
    catalog = load_catalog()
    assert resolve_format(catalog.get("higgs-70b"), {}).name == "llama3"
    assert resolve_format(catalog.get("nemotron-70b"), {}).name == "llama3.1"
    assert resolve_format(catalog.get("qwen2.5-0.5b"), {}).name == "chatml"
    assert resolve_format(catalog.get("gemma-3-1b"), {}).name == "gemma"
    assert resolve_format(None, {"general.architecture": "gemma3"}).name == "gemma"
    assert resolve_format(None, {"general.architecture": "qwen2"}).stop_token_ids == (151645,)
    assert (
        resolve_format(None, {"general.architecture": "llama", "general.name": "huozi3"}).name
        == "huozi3"
    )
    assert resolve_format(None, LLAMA_META).name == "llama3.1"
    unknown = resolve_format(None, {"general.architecture": "rwkv7"})
    assert (unknown.name, unknown.source) == ("raw", "family default")
    assert unknown.render([Message("user", "Once upon a time")]) == "Once upon a time"


def test_gemma_270m_base_model_uses_question_answer_completion() -> None:
    """The 270M is a base model: it is prompted as a Q/A completion, not with chat turns."""
    fmt = resolve_format(load_catalog().get("gemma-3-270m"), {"general.architecture": "gemma3"})
    spec = fmt.prompt([Message("system", "Be brief."), Message("user", "Hi")])
    assert spec.text == "Be brief.\nQuestion: Hi\nAnswer:"
    assert not spec.has_bos and spec.stop_strings == ("\nQuestion:", "\nAnswer:")


def test_gemma_family_default_uses_gemma_turns() -> None:
    fmt = resolve_format(None, {"general.architecture": "gemma3"})
    spec = fmt.prompt([Message("user", "Hi")])
    assert spec.text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert spec.has_bos and spec.stop_strings == ("<end_of_turn>",)
    assert spec.stop_token_ids == (106,)


def test_huozi3_prompt_spec_and_sampling() -> None:
    fmt = resolve_format(load_catalog().get("huozi3"), {})
    spec = fmt.prompt(CONVERSATION)
    assert spec.stop_strings == ("<|endofutterance|>",)
    assert spec.stop_token_ids == (57001,) and 2 not in spec.stop_token_ids
    assert not spec.has_bos  # llama.cpp adds the model's own BOS
    assert fmt.default_sampling == {"temperature": 0.8, "top_p": 0.9}
    assert fmt.reply_parser() is None


def test_reflection_sampling_and_parser() -> None:
    fmt = resolve_format(load_catalog().get("reflection-70b"), {})
    assert fmt.default_sampling == {"temperature": 0.7, "top_p": 0.95}
    assert fmt.reply_parser() is not None
    spec = fmt.prompt(CONVERSATION)
    assert 128009 in spec.stop_token_ids
    assert spec.render_special_tokens  # <thinking> etc. are control tokens in its GGUF
    assert (
        not resolve_format(load_catalog().get("huozi3"), {})
        .prompt(CONVERSATION)
        .render_special_tokens
    )


def test_unknown_explicit_format_is_a_config_error() -> None:
    from dataclasses import replace

    entry = replace(load_catalog().get("huozi3"), chat_format="vicuna")
    with pytest.raises(ConfigError, match="unknown chat_format 'vicuna'"):
        resolve_format(entry, {})


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_templates_are_refused(name: str) -> None:
    with pytest.raises(UnsafeTemplateError) as caught:
        resolve_format(None, {"tokenizer.chat_template": HOSTILE[name]})
    assert "refused" in caught.value.one_line()


def test_hostile_template_in_a_gguf_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "evil.gguf", HOSTILE["subclasses"])
    metadata = read_gguf_metadata(path)
    with pytest.raises(UnsafeTemplateError, match="Python internals"):
        resolve_format(None, metadata)
    path = write_gguf(tmp_path / "evil2.gguf", HOSTILE["cycler globals"])
    with pytest.raises(UnsafeTemplateError):
        resolve_format(None, read_gguf_metadata(path))


def test_gguf_file_with_a_real_template(tmp_path: Path) -> None:
    tokens = ["<bos>", "<eos>", "<end_of_turn>"]
    path = write_gguf(tmp_path / "g.gguf", GEMMA3, arch="gemma3", tokens=tokens)
    fmt = resolve_format(None, read_gguf_metadata(path))
    assert fmt.source == "gguf"
    assert fmt.render(CONVERSATION) == resolve_format(
        None, {"general.architecture": "gemma3"}
    ).render(CONVERSATION)
    assert fmt.prompt(CONVERSATION).has_bos


def test_template_errors() -> None:
    with pytest.raises(TemplateError, match="not valid Jinja"):
        resolve_format(None, {"tokenizer.chat_template": "{% for x in %}"})
    fmt = resolve_format(None, {"tokenizer.chat_template": GEMMA3, "tokenizer.bos_token": "<bos>"})
    with pytest.raises(TemplateRejected, match="roles must alternate"):
        fmt.render([Message("user", "a"), Message("user", "b")])


def test_stop_checker() -> None:
    checker = make_stop_checker([57001])
    assert checker([1, 5, 57001], None) and not checker([1, 57001, 5], None)
    assert not checker([], None) and checker.is_stop(57001)


def test_transformers_template_extras() -> None:
    template = (
        "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
        "{{ m.content }}{% endgeneration %}{% else %}{{ m.content | tojson }}{% endif %}"
        "{% if loop.index > 2 %}{% break %}{% endif %}{% endfor %}"
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
        "{{ ns.n }}"
    )
    fmt = resolve_format(None, {"tokenizer.chat_template": template})
    assert fmt.render(CONVERSATION) == '"你是一个智能助手""你好"你好！有什么可以帮你？3'
