"""The AWQ tier: real tiny AWQ checkpoints (built on the CPU by ``tests.fixtures.awq_models``),
real transformers + GPTQModel on the CPU torch, the real CLI, the loopback fake hub.

Nothing is mocked except, in one test, the *absence* of the awq extra (a shadow package
that fails to import), since the extra is installed wherever this tier runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.engine import load_backend
from localchat.engine.settings import AwqSettings
from localchat.errors import CorruptModelFile, EngineError, ExitCode
from localchat.types import PromptSpec, SamplingParams
from tests.fixtures import fakehub
from tests.fixtures.fakehub import FakeHub, hub_env

pytestmark = [pytest.mark.awq, pytest.mark.slow]
fake_hub = fakehub.fake_hub

# Teacher-forced greedy agreement of the 4-bit model with its float original, over 6
# prompts x 24 tokens.  Measured 0.993 for both the Llama and the Mixtral (one position
# of 144 differs); 0.90 leaves room for other CPUs' float rounding, while a model with
# weights that did not load (random experts, zero scales) agrees on well under half.
MIN_GREEDY_AGREEMENT = 0.90
QUESTIONS = ("what color is the sky", "name a fruit", "what do cats say", "say hello",
             "where is the sun", "what is two plus two")  # fmt: skip
SKY = "<s><|user|>\nwhat color is the sky</s>\n<|assistant|>\n"


def localchat(home: Path, *args: str, env: dict[str, str] | None = None):
    full_env = {**os.environ, "LOCALCHAT_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "localchat", *args],
        capture_output=True, text=True, env=full_env, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("done", "quant_log.csv"))
    return dst


@pytest.mark.parametrize("kind", ["llama", "mixtral"])
def test_greedy_tokens_agree_with_the_float_model(awq_tiny, kind: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    float_dir, awq_dir = awq_tiny[kind]
    tokenizer = AutoTokenizer.from_pretrained(float_dir)
    float_model = AutoModelForCausalLM.from_pretrained(float_dir, dtype=torch.float32).eval()
    backend = load_backend(AwqSettings(awq_dir, n_ctx=256))
    try:
        assert backend._loaded.key_check.ok  # no missing, no unexpected weights
        agree = total = 0
        for question in QUESTIONS:
            prompt = f"<s><|user|>\n{question}</s>\n<|assistant|>\n"
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
            with torch.inference_mode():
                sequence = float_model.generate(
                    ids, max_new_tokens=24, min_new_tokens=24, do_sample=False
                )
                awq_logits = backend._loaded.model(input_ids=sequence).logits[0]
                float_logits = float_model(input_ids=sequence).logits[0]
            n = ids.shape[1]
            same = awq_logits[n - 1 : -1].argmax(-1) == float_logits[n - 1 : -1].argmax(-1)
            agree += int(same.sum())
            total += same.numel()
        assert agree / total >= MIN_GREEDY_AGREEMENT, f"{agree}/{total} positions agree"
    finally:
        backend.close()


def test_legacy_mixtral_keys_are_mapped_and_checked(awq_tiny, monkeypatch) -> None:
    """The tiny Mixtral is saved with AutoAWQ's names (block_sparse_moe.experts.N.w1...)."""
    from localchat.engine.awq import loader
    from localchat.safetensors import read_checkpoint

    awq_dir = awq_tiny["mixtral"][1]
    names = read_checkpoint(awq_dir).tensor_names
    assert any(".block_sparse_moe.experts.0.w1." in n for n in names)
    backend = load_backend(AwqSettings(awq_dir, n_ctx=256))
    assert backend._loaded.renamed_keys > 0 and backend._loaded.key_check.ok
    text = "".join(backend.stream(PromptSpec(SKY, ("</s>",), has_bos=True), greedy(16)))
    backend.close()
    assert text.strip()
    # Without the map, the same checkpoint is refused, not run with uninitialised experts.
    monkeypatch.setattr(loader, "legacy_key_map", lambda names: {})
    with pytest.raises(EngineError, match="missing"):
        load_backend(AwqSettings(awq_dir, n_ctx=256))


def greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=1)


def test_stream_stats_stops_and_cancel(awq_tiny) -> None:
    backend = load_backend(AwqSettings(awq_tiny["llama"][1], n_ctx=256))
    try:
        pieces = list(backend.stream(PromptSpec(SKY, ("</s>",), has_bos=True), greedy(40)))
        stats = backend.last_stats
        assert "".join(pieces).strip() and "</s>" not in "".join(pieces)
        assert stats.finish_reason == "stop" and stats.prompt_tokens == 12
        assert stats.time_to_first_token_s is not None and stats.completion_tokens >= 2
        # a long reply, closed after the first piece: decoding stops, stats say cancelled
        prompt = PromptSpec(SKY, (), has_bos=True, render_special_tokens=True)
        stream = backend.stream(prompt, SamplingParams(temperature=0.0, max_tokens=100))
        next(stream)
        stream.close()
        assert backend.last_stats.finish_reason == "cancelled"
        assert backend.last_stats.completion_tokens < 100
        capped = list(backend.stream(prompt, greedy(5)))
        assert backend.last_stats.finish_reason == "length" and capped
        assert backend.last_stats.completion_tokens == 5
    finally:
        backend.close()


def test_ask_pulls_from_the_hub_and_answers(awq_tiny, fake_hub: FakeHub, localchat_home) -> None:
    awq_dir = awq_tiny["llama"][1]
    files = {p.name: p for p in awq_dir.iterdir() if p.name not in ("done", "quant_log.csv")}
    fake_hub.add_repo("acme/tiny-llama-AWQ", files)
    result = localchat(
        localchat_home, "ask", "--json", "--temperature", "0", "--max-tokens", "20",
        "-m", "acme/tiny-llama-AWQ", "what color is the sky", env=hub_env(fake_hub),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["text"].strip()
    assert answer["prompt_tokens"] == 12 and answer["quant"] == "AWQ", answer
    assert "AWQ" in answer["plan"]["backend"] and answer["plan"]["format"] == "awq"
    pulled = [r.file_path for r in fake_hub.requests("GET") if r.file_path]
    assert "model.safetensors" in pulled and "config.json" in pulled
    listed = localchat(localchat_home, "list", "--json", env=hub_env(fake_hub))
    assert any(m.get("format") == "awq" for m in json.loads(listed.stdout)), listed.stdout


def test_plan_reads_the_checkpoint(awq_tiny, localchat_home) -> None:
    result = localchat(localchat_home, "plan", "--json", str(awq_tiny["llama"][1]))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["format"] == "awq" and plan["quant"] == "AWQ" and plan["fits"]
    assert plan["devices"][0]["weights"] > 1_000_000


def split_in_two_shards(folder: Path) -> None:
    """Rewrite ``model.safetensors`` as two shards plus the index, as big checkpoints come."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}  # fmt: skip
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, folder / shard, metadata={"format": "pt"})
    (folder / "model.safetensors").unlink()
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def test_deleted_shard_and_corrupt_config_give_one_line(awq_tiny, tmp_path, localchat_home) -> None:
    broken = copy_checkpoint(awq_tiny["llama"][1], tmp_path / "no-shard")
    split_in_two_shards(broken)
    (broken / "model-00002-of-00002.safetensors").unlink()
    result = localchat(localchat_home, "ask", "-m", str(broken), "hi")
    assert result.returncode == CorruptModelFile.exit_code == ExitCode.CORRUPT_MODEL_FILE
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("localchat: error:")
    assert "model-00002-of-00002.safetensors is missing" in result.stderr
    bad_config = copy_checkpoint(awq_tiny["llama"][1], tmp_path / "bad-config")
    (bad_config / "config.json").write_text('{"model_type": "llama", ')
    result = localchat(localchat_home, "ask", "-m", str(bad_config), "hi")
    assert result.returncode == ExitCode.CORRUPT_MODEL_FILE, result.stderr
    assert result.stderr.count("\n") == 1 and "config.json" in result.stderr


def test_without_the_extra_one_line_says_what_to_install(
    awq_tiny, tmp_path, localchat_home
) -> None:
    """The extra is installed here, so its absence is simulated: a ``gptqmodel`` package
    earlier on sys.path that fails to import, as a missing module does."""
    shadow = tmp_path / "shadow" / "gptqmodel"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'gptqmodel'\", name='gptqmodel')\n"
    )
    env = {"PYTHONPATH": f"{shadow.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = localchat(localchat_home, "ask", "-m", str(awq_tiny["llama"][1]), "hi", env=env)
    assert result.returncode == ExitCode.ENGINE_FAILED, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert 'pip install "localchat[awq]"' in result.stderr and result.stdout == ""


def test_catalog_awq_name_runs_the_legacy_mixtral(
    awq_tiny, fake_hub: FakeHub, localchat_home
) -> None:
    """``huozi3:AWQ`` resolves to HIT-SCIR/huozi3-awq; the fake hub serves the tiny Mixtral
    saved with the same AutoAWQ legacy layout there (the real one is 25 GB)."""
    awq_dir = awq_tiny["mixtral"][1]
    files = {p.name: p for p in awq_dir.iterdir() if p.name not in ("done", "quant_log.csv")}
    fake_hub.add_repo("HIT-SCIR/huozi3-awq", files)
    result = localchat(
        localchat_home, "ask", "--json", "--temperature", "0", "--max-tokens", "8",
        "-m", "huozi3:AWQ", "你好", env=hub_env(fake_hub),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["quant"] == "AWQ" and answer["completion_tokens"] >= 1
    assert answer["prompt_tokens"] > 5  # huozi3's own format around the question
    shown = localchat(localchat_home, "show", "huozi3:AWQ", env=hub_env(fake_hub))
    assert shown.returncode == 0 and "<|beginofutterance|>" in shown.stdout, shown.stdout


def test_same_prompt_tokens_as_the_gguf_of_the_same_model(awq_tiny, tmp_path) -> None:
    """The tiny float Llama written as a GGUF (tests.fixtures.tiny_gguf) renders and
    tokenizes a conversation exactly as its AWQ checkpoint does."""
    import llama_cpp
    from transformers import AutoTokenizer

    from localchat.formats import resolve_format
    from localchat.gguf import read_gguf_metadata
    from localchat.safetensors import read_config
    from localchat.safetensors.metadata import hf_metadata
    from localchat.types import Message
    from tests.fixtures.tiny_gguf import write_tiny_gguf

    float_dir, awq_dir = awq_tiny["llama"]
    gguf_path = write_tiny_gguf(float_dir, tmp_path / "tiny-Q4_0.gguf")
    messages = [Message("system", "be brief"), Message("user", "what color is grass")]
    from_gguf = resolve_format(None, read_gguf_metadata(gguf_path)).prompt(messages)
    from_awq = resolve_format(None, hf_metadata(awq_dir, read_config(awq_dir))).prompt(messages)
    assert from_awq == from_gguf
    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=256, verbose=False)
    gguf_ids = llm.tokenize(from_gguf.text.encode(), add_bos=False, special=True)
    tokenizer = AutoTokenizer.from_pretrained(awq_dir)
    assert tokenizer(from_awq.text, add_special_tokens=False)["input_ids"] == gguf_ids
    llm.close()


def test_incremental_detokenizer_never_splits_a_character(awq_tiny) -> None:
    """Byte-level BPE splits 你 into byte tokens; pieces come out whole, in order."""
    from transformers import AutoTokenizer

    from localchat.engine.awq.backend import IncrementalDetokenizer

    tokenizer = AutoTokenizer.from_pretrained(awq_tiny["llama"][1])
    text = "你好, the sky is 蓝色 — blue.</s>ok"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text) // 2  # many byte-level tokens
    detokenizer = IncrementalDetokenizer(tokenizer, render_special_tokens=True)
    pieces = [detokenizer.feed(token) for token in ids]
    pieces.append(detokenizer.flush())
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == text
    hidden = IncrementalDetokenizer(tokenizer, render_special_tokens=False)
    shown = "".join([hidden.feed(token) for token in ids] + [hidden.flush()])
    assert shown == text.replace("</s>", "")
