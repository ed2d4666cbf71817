"""Split models: llama.cpp ``-0000N-of-00002`` parts in a subfolder, and ``.partXofY``
pieces joined into one file — pulled through the CLI, then loaded by llama-cpp-python.

The GGUFs are tiny generated llama models; the hub is the loopback fake hub
(``HF_ENDPOINT``), everything else is real.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.paths import partial_downloads_dir
from tests.fixtures.fakehub import (
    FakeHub,
    Fault,
    fake_hub,  # noqa: F401  (pytest fixture)
    hub_env,
)
from tests.fixtures.gguf_files import ModelSpec, llama_spec, write_gguf, write_split_gguf

REPO = "acme/tiny-llama-GGUF"


def loadable_spec() -> ModelSpec:
    """A 2-layer llama with an SPM byte vocabulary that llama.cpp loads and runs."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁hello", "a"]
    spec = llama_spec(
        name="tiny-loadable", quant="Q8_0", n_layers=2, n_embd=64, n_head=4, n_head_kv=2,
        n_ff=128, n_vocab=len(tokens), n_ctx_train=512, with_tokens=False,
    )  # fmt: skip
    spec.metadata.update(
        {
            "tokenizer.ggml.model": "llama",
            "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.scores": [0.0] * len(tokens),
            "tokenizer.ggml.token_type": [2, 3, 3] + [6] * 256 + [1, 1],
            "tokenizer.ggml.unknown_token_id": 0,
        }
    )
    return spec


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("split-models")
    (single,) = write_gguf(folder / "single.gguf", loadable_spec())
    (folder / "split").mkdir()
    split = write_split_gguf(folder / "split" / "tiny-Q8_0.gguf", loadable_spec(), 2)
    data = single.read_bytes()
    half = len(data) // 2
    (folder / "p1").write_bytes(data[:half])
    (folder / "p2").write_bytes(data[half:])
    return {
        "tiny-Q8_0/tiny-Q8_0-00001-of-00002.gguf": split[0],
        "tiny-Q8_0/tiny-Q8_0-00002-of-00002.gguf": split[1],
        "tiny.Q6_K.gguf.part1of2": folder / "p1",
        "tiny.Q6_K.gguf.part2of2": folder / "p2",
        "joined": single,
    }


def pull(hub: FakeHub, home: Path, model: str) -> Path:
    env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "localchat", "pull", model],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def load_and_generate(path: Path) -> str:
    llama_cpp = pytest.importorskip("llama_cpp")
    model = llama_cpp.Llama(str(path), n_ctx=64, n_threads=1, verbose=False)
    out = model.create_completion("hello", max_tokens=2, temperature=0.0)
    return out["choices"][0]["text"]


@pytest.fixture
def hub(fake_hub: FakeHub, model_files: dict[str, Path]) -> FakeHub:  # noqa: F811
    fake_hub.add_repo(REPO, {k: v for k, v in model_files.items() if k != "joined"})
    return fake_hub


@pytest.mark.llama
def test_split_in_subfolder_is_pulled_side_by_side_and_loads(
    hub: FakeHub, localchat_home: Path, model_files: dict[str, Path]
) -> None:
    first = pull(hub, localchat_home, f"{REPO}:Q8_0")
    assert first.name == "tiny-Q8_0-00001-of-00002.gguf"
    second = first.with_name("tiny-Q8_0-00002-of-00002.gguf")
    assert first.parent.name == "tiny-Q8_0" and second.exists()
    assert (
        second.read_bytes() == model_files["tiny-Q8_0/tiny-Q8_0-00002-of-00002.gguf"].read_bytes()
    )
    assert isinstance(load_and_generate(first), str)


@pytest.mark.llama
def test_part_pieces_are_verified_joined_and_load(
    hub: FakeHub, localchat_home: Path, model_files: dict[str, Path]
) -> None:
    hub.set_fault(REPO, "tiny.Q6_K.gguf.part2of2", Fault("drop", at_byte=20_000, times=1))
    path = pull(hub, localchat_home, f"{REPO}:q6_k")
    assert path.name == "tiny.Q6_K.gguf"
    joined = model_files["joined"].read_bytes()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(joined).hexdigest()
    assert not any(p for p in partial_downloads_dir().rglob("*") if p.is_file())
    assert isinstance(load_and_generate(path), str)


def test_piece_with_wrong_bytes_is_never_joined(hub: FakeHub, localchat_home: Path) -> None:
    hub.set_fault(REPO, "tiny.Q6_K.gguf.part2of2", Fault("wrong_bytes"))
    env = {**os.environ, **hub_env(hub), "LOCALCHAT_HOME": str(localchat_home)}
    result = subprocess.run(
        [sys.executable, "-m", "localchat", "pull", "-q", f"{REPO}:Q6_K"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 5
    assert "part2of2" in result.stderr and "sha256" in result.stderr
    from localchat.paths import hf_cache_dir
    from tests.fixtures.fakehub import cache_files

    assert cache_files(hf_cache_dir()) == {}
