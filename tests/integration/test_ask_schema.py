"""``localchat ask --schema`` end to end: the real CLI and the real Gemma 3 270M base model;
the sampler's grammar makes its answer valid JSON, printed alone on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localchat.errors import ExitCode
from tests.integration.cli import assert_one_clean_error_line, run_localchat

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
jsonschema = pytest.importorskip("jsonschema")

FIXED = ("--temperature", "0", "--seed", "7")
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "country": {"type": "string", "maxLength": 20},
        "visitors_per_year": {"type": "integer", "minimum": 0},
    },
    "required": ["city", "country", "visitors_per_year"],
    "additionalProperties": False,
}


def test_schema_as_text_prints_only_valid_json(localchat_home: Path, gemma_path: Path) -> None:
    result = run_localchat(
        localchat_home, "ask", "-m", "gemma-3-270m", *FIXED, "--schema", json.dumps(SCHEMA),
        "Where is the Eiffel Tower?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    jsonschema.validate(json.loads(result.stdout), SCHEMA)


def test_schema_from_a_file_with_json_output(
    localchat_home: Path, gemma_path: Path, tmp_path: Path
) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA), encoding="utf-8")
    result = run_localchat(
        localchat_home, "ask", "--json", "-m", "gemma-3-270m", *FIXED,
        "--schema", str(schema_file), "Where is Big Ben?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    jsonschema.validate(payload["data"], SCHEMA)
    assert json.loads(payload["text"]) == payload["data"]
    assert payload["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ('{"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}}',
         "--schema: 'multipleOf' at /properties/n"),
        ('{"type": "object", "properties": ', "--schema: not valid JSON"),
        ("[1, 2]", "--schema: a JSON schema must be a JSON object"),
        ('{"type": "strnig"}', "--schema: 'type'"),
        ("no-such-schema.json", "--schema no-such-schema.json: cannot read it"),
    ],
)  # fmt: skip
def test_bad_schemas_are_one_line_and_exit_2(localchat_home: Path, schema: str, words: str) -> None:
    """Refused before any model loads (the model named here does not even exist)."""
    result = run_localchat(localchat_home, "ask", "-m", "nope/none", "--schema", schema, "hi")
    assert_one_clean_error_line(result, ExitCode.USAGE)
    assert words in result.stderr


def test_a_reply_cut_short_is_an_error_not_broken_json(
    localchat_home: Path, gemma_path: Path
) -> None:
    result = run_localchat(
        localchat_home, "ask", "-m", "gemma-3-270m", *FIXED, "--max-tokens", "3",
        "--schema", json.dumps(SCHEMA), "Where is the Eiffel Tower?",
    )  # fmt: skip
    assert_one_clean_error_line(result, ExitCode.ENGINE_FAILED)
    assert "before its JSON was complete" in result.stderr
    assert "--max-tokens" in result.stderr
