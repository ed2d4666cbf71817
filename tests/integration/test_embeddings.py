"""Embeddings in process and from the CLI, on real llama.cpp: tiny BERT and Nomic BERT
GGUFs (no KV cache) and a causal llama with last or mean pooling (a KV cache, as
Qwen3-Embedding), all with random weights (``tests.fixtures.embed_gguf``), compared with
llama-cpp-python's own ``Llama(embedding=True).embed`` on the same files; and the real
gemma-3-270m, which is a generative model and is refused."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from localchat import services
from localchat.errors import ExitCode, InvalidRequest
from localchat.services import EmbedOptions, LoadedModel
from tests.fixtures.embed_gguf import cosine, norm, oracle_embeddings, oracle_tokens, vocabulary
from tests.fixtures.embed_gguf import embed_ggufs as embed_ggufs  # the fixture, re-exported
from tests.fixtures.fakehub import FakeHub, hub_env
from tests.fixtures.fakehub import fake_hub as fake_hub  # the fixture, re-exported
from tests.integration.cli import assert_one_clean_error_line, run_localchat

pytestmark = [pytest.mark.llama]
pytest.importorskip("llama_cpp")

TEXTS = ["hello world", "the cat sat on the mat", "embedding vector 42!", "a"]
SAME = 0.9999  # cosine to llama.cpp's own vectors


def _open(path: Path) -> LoadedModel:
    return services.open_model(str(path), local=True, allow_download=False, n_threads=2)


@pytest.fixture(scope="module")
def bert(embed_ggufs: dict[str, Path]) -> Iterator[LoadedModel]:
    with _open(embed_ggufs["bert-mean"]) as model:
        yield model


@pytest.mark.parametrize(
    "name", ["bert-mean", "bert-cls", "nomic-mean", "llama-last", "llama-mean"]
)
def test_vectors_match_llama_cpp_python(embed_ggufs: dict[str, Path], name: str) -> None:
    path = embed_ggufs[name]
    expected = oracle_embeddings(path, TEXTS)
    raw_expected = oracle_embeddings(path, TEXTS, normalize=False)
    with _open(path) as model:
        result = services.embed_inputs(model, TEXTS)
        raw = services.embed_inputs(model, TEXTS, EmbedOptions(normalize=False))
    assert len(result.vectors) == len(TEXTS) and result.dimensions == 64
    for got, want in zip(result.vectors, expected, strict=True):
        assert cosine(got, want) >= SAME
        assert norm(got) == pytest.approx(1.0, abs=1e-6)
    for got, want in zip(raw.vectors, raw_expected, strict=True):
        assert got == pytest.approx(want, rel=1e-3, abs=1e-4)  # the pooled vector itself
    assert result.prompt_tokens == sum(len(oracle_tokens(path, text)) for text in TEXTS)


@pytest.mark.parametrize("name", ["bert-mean", "llama-last"])
def test_many_inputs_in_several_decodes_equal_each_alone(
    embed_ggufs: dict[str, Path], name: str
) -> None:
    """Packing (sequence ids, several llama_decode calls, the KV cache cleared between
    them) must not mix inputs up."""
    rng = random.Random(5)
    words = [token.removeprefix("\u2581") for token in vocabulary()[5:] if len(token) > 1]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(150)]
    with _open(embed_ggufs[name]) as model:
        together = services.embed_inputs(model, texts).vectors
        for index in (0, 1, 63, 64, 65, 99, 149):
            alone = services.embed_inputs(model, [texts[index]]).vectors[0]
            assert cosine(together[index], alone) >= SAME, index


def test_dimensions_cut_then_rescale(bert: LoadedModel) -> None:
    full = services.embed_inputs(bert, TEXTS, EmbedOptions(normalize=False)).vectors
    cut = services.embed_inputs(bert, TEXTS, EmbedOptions(dimensions=16)).vectors
    for whole, short in zip(full, cut, strict=True):
        assert len(short) == 16 and norm(short) == pytest.approx(1.0, abs=1e-6)
        assert cosine(short, whole[:16]) >= SAME
    with pytest.raises(InvalidRequest, match="dimensions 65 is more than"):
        services.embed_inputs(bert, TEXTS, EmbedOptions(dimensions=65))


def test_token_ids_embed_as_their_text(bert: LoadedModel, embed_ggufs: dict[str, Path]) -> None:
    tokens = oracle_tokens(embed_ggufs["bert-mean"], TEXTS[1])
    by_ids, by_text = services.embed_inputs(bert, [tokens, TEXTS[1]]).vectors
    assert cosine(by_ids, by_text) >= SAME
    with pytest.raises(InvalidRequest, match=r"input\[1\] has token id 99999, outside"):
        services.embed_inputs(bert, [tokens, [5, 99999]])
    with pytest.raises(InvalidRequest, match=r"input\[0\] is an empty list of token ids"):
        services.embed_inputs(bert, [[]])
    with pytest.raises(InvalidRequest, match=r"input\[2\] is an empty string"):
        services.embed_inputs(bert, ["a", "b", ""])


def test_a_long_input_is_cut_keeping_its_sep_or_refused(
    bert: LoadedModel, embed_ggufs: dict[str, Path]
) -> None:
    long_text = " ".join(["hello"] * 300)  # 302 tokens with CLS and SEP; the model reads 128
    result = services.embed_inputs(bert, [long_text, "a"])
    assert result.truncated == (0,) and result.prompt_tokens == 128 + 3
    tokens = oracle_tokens(embed_ggufs["bert-mean"], long_text)
    kept = [*tokens[:127], tokens[-1]]  # the first 127, then the SEP the tokenizer appended
    assert cosine(result.vectors[0], services.embed_inputs(bert, [kept]).vectors[0]) >= SAME
    with pytest.raises(InvalidRequest, match=r"input\[0\] is 302 tokens; .* at most 128"):
        services.embed_inputs(bert, [long_text], EmbedOptions(truncate=False))


def test_a_causal_model_keeps_its_eos_when_cut(embed_ggufs: dict[str, Path]) -> None:
    path = embed_ggufs["llama-last"]
    long_text = "abc " * 100  # far over the 256 tokens it was trained for
    tokens = oracle_tokens(path, long_text)
    with _open(path) as model:
        result = services.embed_inputs(model, [long_text])
        kept = [*tokens[:255], tokens[-1]]  # ... then the EOS, whose state is pooled
        assert tokens[-1] == 2 and result.prompt_tokens == 256
        assert cosine(result.vectors[0], services.embed_inputs(model, [kept]).vectors[0]) >= SAME


def test_an_embedding_model_does_not_chat(bert: LoadedModel) -> None:
    with pytest.raises(InvalidRequest, match="is an embedding model: it makes vectors, not text"):
        bert.stream_completion("hello")


def test_a_reranker_makes_no_embeddings(embed_ggufs: dict[str, Path]) -> None:
    path = embed_ggufs["bert-rank"]
    with pytest.raises(InvalidRequest, match="is a reranker"):
        services.embed_texts(["hello"], model=str(path), allow_download=False)  # refused unloaded
    with _open(path) as model, pytest.raises(InvalidRequest, match="is a reranker"):
        services.embed_inputs(model, ["hello"])


def test_gemma_is_refused_before_it_loads(
    gemma_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generative model is not served for embeddings (see engine/embedding.py); its
    files (or its catalog entry) say so before anything loads."""

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("localchat.services.embed.open_model", no_load)
    for model in (str(gemma_path), "gemma-3-270m", "qwen2.5-0.5b"):
        with pytest.raises(InvalidRequest, match="is not an embedding model"):
            services.embed_texts("hello", model=model)


def test_gemma_opened_for_chat_has_no_embedder(gemma_path: Path) -> None:
    with _open(gemma_path) as model, pytest.raises(InvalidRequest, match="not an embedding"):
        services.embed_inputs(model, ["hello"])


# -- localchat embed -------------------------------------------------------------------


def test_cli_embeds_stdin_lines(embed_ggufs: dict[str, Path], localchat_home: Path) -> None:
    path = embed_ggufs["bert-cls"]
    result = run_localchat(localchat_home, "embed", "-m", str(path), stdin="\n".join(TEXTS) + "\n")
    assert result.returncode == 0, result.stderr
    vectors = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(vectors) == len(TEXTS)
    for got, want in zip(vectors, oracle_embeddings(path, TEXTS), strict=True):
        assert cosine(got, want) >= SAME and norm(got) == pytest.approx(1.0, abs=1e-6)


def test_cli_json_dimensions_and_raw(embed_ggufs: dict[str, Path], localchat_home: Path) -> None:
    path = str(embed_ggufs["bert-mean"])
    result = run_localchat(
        localchat_home, "embed", "-m", path, "--json", "--dimensions", "8", "a", "the cat"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["dimensions"] == 8 and document["model"] == Path(path).name
    assert [len(v) for v in document["embeddings"]] == [8, 8]
    assert document["prompt_tokens"] == 3 + 4
    raw = run_localchat(localchat_home, "embed", "-m", path, "--no-normalize", "a")
    assert abs(norm(json.loads(raw.stdout)) - 1.0) > 1e-3  # pooled as it is, not unit length


def test_cli_notes_a_cut_input(embed_ggufs: dict[str, Path], localchat_home: Path) -> None:
    path = str(embed_ggufs["bert-mean"])
    long_text = " ".join(["hello"] * 300)
    result = run_localchat(localchat_home, "embed", "-m", path, "short", long_text)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 2
    assert "text 2 was cut to the 128 tokens" in result.stderr
    refused = run_localchat(localchat_home, "embed", "-m", path, "--no-truncate", long_text)
    assert_one_clean_error_line(refused, ExitCode.USAGE)
    assert "text 1 is 302 tokens" in refused.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (("--dimensions", "65", "hi"), None, "dimensions 65 is more than"),
        ((), "a\n\nb\n", "line 2 of stdin is blank"),
        (("-m", "gemma-3-270m", "hi"), None, "gemma-3-270m is not an embedding model"),
    ],
)
def test_cli_errors_are_one_line(
    embed_ggufs: dict[str, Path],
    localchat_home: Path,
    args: tuple[str, ...],
    stdin: str | None,
    expected: str,
) -> None:
    model = ("-m", str(embed_ggufs["bert-mean"])) if "-m" not in args else ()
    result = run_localchat(localchat_home, "embed", *model, *args, stdin=stdin)
    assert_one_clean_error_line(result, ExitCode.USAGE)
    assert expected in result.stderr


def test_cli_show_and_ask_on_an_embedding_model(
    embed_ggufs: dict[str, Path], localchat_home: Path
) -> None:
    path = str(embed_ggufs["nomic-mean"])
    shown = run_localchat(localchat_home, "show", path)
    assert shown.returncode == 0, shown.stderr
    assert "embedding model, 64 dimensions, pooling mean" in shown.stdout
    asked = run_localchat(localchat_home, "ask", "--local", "-m", path, "hello")
    assert_one_clean_error_line(asked, ExitCode.USAGE)
    assert "is an embedding model: it makes vectors, not text" in asked.stderr


def test_a_catalog_embedding_model_plans_pulls_lists_shows_and_embeds(
    fake_hub: FakeHub, embed_ggufs: dict[str, Path], localchat_home: Path
) -> None:
    """nomic-embed-text-v1.5 by its catalog name, its repo played by the loopback hub with
    the tiny Nomic BERT under the real file name."""
    tiny = embed_ggufs["nomic-mean"]
    repo, name = "nomic-ai/nomic-embed-text-v1.5-GGUF", "nomic-embed-text-v1.5.Q4_K_M.gguf"
    fake_hub.add_repo(repo, {name: tiny.read_bytes()})
    env = {**hub_env(fake_hub), "HF_HUB_OFFLINE": "0"}
    model = "nomic-embed-text-v1.5:Q4_K_M"

    planned = run_localchat(localchat_home, "plan", model, "--json", **env)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)  # from the remote header, by HTTP Range
    assert plan["pooling"] == "mean" and plan["n_ctx"] == plan["n_ubatch"] == 128
    pulled = run_localchat(localchat_home, "pull", model, **env)
    assert pulled.returncode == 0, pulled.stderr
    listed = run_localchat(localchat_home, "list", "--json")
    assert any(m["name"] == "nomic-embed-text-v1.5" for m in json.loads(listed.stdout))
    shown = run_localchat(localchat_home, "show", model)
    assert "embedding model, 64 dimensions, pooling mean" in shown.stdout  # the file's, not 768
    embedded = run_localchat(localchat_home, "embed", "-m", model, "--no-pull", *TEXTS)
    assert embedded.returncode == 0, embedded.stderr
    vectors = [json.loads(line) for line in embedded.stdout.splitlines()]
    for got, want in zip(vectors, oracle_embeddings(tiny, TEXTS), strict=True):
        assert cosine(got, want) >= SAME
