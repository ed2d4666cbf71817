"""``localchat show``: the format summary, byte-exact --render, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localchat.catalog import load_catalog
from localchat.cli.main import main
from localchat.errors import ExitCode
from localchat.formats import resolve_format
from localchat.protocol import parse_messages
from tests.unit.test_formats_resolve import HOSTILE, LLAMA31, write_gguf

MESSAGES = [
    {"role": "system", "content": "你是一个智能助手"},
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！有什么可以帮你？"},
    {"role": "user", "content": "讲个笑话\n"},
]


def run(argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsysbinary.readouterr()
    return int(exited.value.code or 0), captured.out.decode(), captured.err.decode()


def test_show_catalog_model_not_downloaded(capsysbinary) -> None:
    code, out, err = run(["show", "huozi3"], capsysbinary)
    assert code == 0, err
    assert "huozi3 (from models.toml)" in out
    assert '"<|endofutterance|>"' in out and "57001" in out
    assert "temperature=0.8 top_p=0.9" in out
    assert "<|beginofutterance|>用户\nWhat is the capital of France?<|endofutterance|>\n" in out
    assert out.rstrip().endswith("─" * 60)


def test_show_gguf_format_model_not_downloaded(capsysbinary) -> None:
    code, out, _ = run(["show", "nemotron-70b"], capsysbinary)
    assert code == 0
    assert "llama3.1 (from the family default)" in out
    assert "the GGUF's own chat template will be used once downloaded" in out
    assert "128009" in out


def test_show_reflection_shows_official_system_prompt(capsysbinary) -> None:
    code, out, _ = run(["show", "reflection-70b"], capsysbinary)
    assert code == 0 and "You are a world-class AI system" in out
    assert "thinking / reflection / output" in out


def test_render_is_byte_exact(tmp_path: Path, capsysbinary) -> None:
    source = tmp_path / "conv.json"
    source.write_text(json.dumps(MESSAGES, ensure_ascii=False), encoding="utf-8")
    for model in ("huozi3", "reflection-70b", "higgs-70b", "qwen2.5-0.5b"):
        code, out, err = run(["show", model, "--render", str(source)], capsysbinary)
        expected = resolve_format(load_catalog().get(model), {}).render(
            parse_messages(MESSAGES), add_generation_prompt=True
        )
        assert code == 0, err
        assert out == expected


def test_render_a_local_gguf_with_its_template(tmp_path: Path, capsysbinary) -> None:
    path = write_gguf(tmp_path / "m.gguf", LLAMA31, name="Some Llama 3.1")
    source = tmp_path / "conv.json"
    source.write_text(json.dumps({"messages": MESSAGES}), encoding="utf-8")
    code, out, err = run(["show", str(path), "--render", str(source)], capsysbinary)
    assert code == 0, err
    assert out.startswith("<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge")
    assert out.endswith("讲个笑话<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    code, out, _ = run(["show", str(path)], capsysbinary)
    assert "from the GGUF's tokenizer.chat_template" in out


def test_hostile_gguf_is_refused_with_one_line(tmp_path: Path, capsysbinary) -> None:
    path = write_gguf(tmp_path / "evil.gguf", HOSTILE["cycler globals"])
    code, out, err = run(["show", str(path)], capsysbinary)
    assert code == ExitCode.CORRUPT_MODEL_FILE
    assert out == "" and "Traceback" not in err
    assert err.startswith("localchat: error: ") and err.count("\n") == 1
    assert "refused" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('[{"role": "bot", "content": "x"}]', "role must be system, user, assistant"),
        ('[{"role": "function", "content": "x", "name": "f"}]', "send tools and tool_choice"),
        ('[{"role": "user", "content": 3}]', "content must be a string"),
        ("[]", "non-empty JSON list"),
    ],
)
def test_bad_render_input(tmp_path: Path, capsysbinary, content: str, message: str) -> None:
    source = tmp_path / "bad.json"
    source.write_text(content, encoding="utf-8")
    code, _, err = run(["show", "huozi3", "--render", str(source)], capsysbinary)
    assert code == ExitCode.USAGE and message in err and "Traceback" not in err


def test_render_tool_calls_and_results(tmp_path: Path, capsysbinary) -> None:
    """A built-in format has no tool syntax: calls and results are the generic JSON turns."""
    source = tmp_path / "tools.json"
    calls = [{"id": "c1", "type": "function",
              "function": {"name": "now", "arguments": '{"zone": "UTC"}'}}]  # fmt: skip
    source.write_text(json.dumps([
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
    ]), encoding="utf-8")  # fmt: skip
    code, out, err = run(["show", "huozi3", "--render", str(source)], capsysbinary)
    assert code == 0, err
    text = out.decode("utf-8") if isinstance(out, bytes) else out
    assert '{"tool_calls": [{"name": "now", "arguments": {"zone": "UTC"}}]}' in text
    assert '{"tool_response": {"name": "", "id": "c1", "content": "12:00"}}' in text


def test_unknown_model(capsysbinary) -> None:
    code, _, err = run(["show", "no-such-model"], capsysbinary)
    assert code == ExitCode.MODEL_NOT_FOUND and "Traceback" not in err
