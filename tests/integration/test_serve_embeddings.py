"""``localchat serve``'s embeddings with the clients people use: the ``openai`` SDK's
``embeddings.create`` (float, and base64, which the SDK asks for by default and decodes
itself) and the ``ollama`` client's ``embed`` and ``embeddings``.

The embedding models are tiny BERT GGUFs with random weights, served by the loopback
fake hub (the real hub cannot be reached here) and pulled by the server on first use;
their vectors are compared with llama-cpp-python's own ``Llama(embedding=True)`` on
the same files.  The real gemma-3-270m (a generative model) is refused, as is a chat
with an embedding model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.embed_gguf import cosine, norm, oracle_embeddings, oracle_tokens
from tests.fixtures.embed_gguf import embed_ggufs as embed_ggufs  # the fixture, re-exported
from tests.fixtures.fakehub import FakeHub, hub_env
from tests.fixtures.servers import (
    API_KEY,
    RunningServer,
    openai_client,
    server_home,
    start_localchat_server,
)

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")
openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")

REPOS = {"bert-mean": "acme/tiny-bert-GGUF", "nomic-mean": "acme/tiny-nomic-GGUF"}
REPOS["bert-rank"] = "acme/tiny-rerank-GGUF"
BERT, NOMIC, RERANK = (f"{repo}:F32" for repo in REPOS.values())
TEXTS = ["hello world", "the cat sat on the mat", "embedding vector 42!"]
SAME = 0.9999
LONG = " ".join(["hello"] * 300)  # 302 tokens; the tiny models read 128
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    shared_pip_models: Path,
    gemma_path: Path,
    embed_ggufs: dict[str, Path],
) -> Iterator[RunningServer]:
    with FakeHub() as hub:
        for name, repo in REPOS.items():
            path = embed_ggufs[name]
            hub.add_repo(repo, {path.name: path.read_bytes()})
        home = server_home(tmp_path_factory, shared_pip_models)
        yield from start_localchat_server(
            home, "--api-key", API_KEY, "--threads", "2", **hub_env(hub)
        )


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai_client(server)


@pytest.fixture
def ollama_client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.base_url, headers=AUTH)


def test_openai_float_vectors_match_llama_cpp(
    client: openai.OpenAI, embed_ggufs: dict[str, Path]
) -> None:
    reply = client.embeddings.create(model=BERT, input=TEXTS, encoding_format="float")
    path = embed_ggufs["bert-mean"]
    assert reply.object == "list" and reply.model
    assert [item.index for item in reply.data] == [0, 1, 2]
    for item, want in zip(reply.data, oracle_embeddings(path, TEXTS), strict=True):
        assert item.object == "embedding"
        assert cosine(item.embedding, want) >= SAME
        assert norm(item.embedding) == pytest.approx(1.0, abs=1e-5)
    tokens = sum(len(oracle_tokens(path, text)) for text in TEXTS)
    assert reply.usage.prompt_tokens == tokens == reply.usage.total_tokens


def test_openai_base64_decodes_to_the_float_vectors(client: openai.OpenAI) -> None:
    as_float = client.embeddings.create(model=NOMIC, input=TEXTS, encoding_format="float")
    as_base64 = client.embeddings.create(model=NOMIC, input=TEXTS)  # the SDK's default
    raw = httpx.post(
        f"{client.base_url}embeddings",
        json={"model": NOMIC, "input": "hi", "encoding_format": "base64"},
        headers=AUTH,
    ).json()
    assert isinstance(raw["data"][0]["embedding"], str)  # it really went as base64
    for a, b in zip(as_float.data, as_base64.data, strict=True):
        assert b.embedding == pytest.approx(a.embedding, abs=1e-6)  # float32 on the wire


def test_openai_dimensions_cut_and_rescale(client: openai.OpenAI) -> None:
    full = client.embeddings.create(model=BERT, input=TEXTS[0], encoding_format="float")
    cut = client.embeddings.create(
        model=BERT, input=TEXTS[0], dimensions=16, encoding_format="float"
    )
    vector = cut.data[0].embedding
    assert len(vector) == 16 and norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert cosine(vector, full.data[0].embedding[:16]) >= SAME
    with pytest.raises(openai.BadRequestError, match="dimensions 65 is more than"):
        client.embeddings.create(model=BERT, input="hi", dimensions=65)


def test_openai_token_id_inputs(client: openai.OpenAI, embed_ggufs: dict[str, Path]) -> None:
    tokens = oracle_tokens(embed_ggufs["bert-mean"], TEXTS[1])
    by_text = client.embeddings.create(model=BERT, input=TEXTS[1], encoding_format="float")
    one = client.embeddings.create(model=BERT, input=tokens, encoding_format="float")
    two = client.embeddings.create(model=BERT, input=[tokens, tokens[:3]], encoding_format="float")
    assert cosine(one.data[0].embedding, by_text.data[0].embedding) >= SAME
    assert len(two.data) == 2 and two.usage.prompt_tokens == len(tokens) + 3
    with pytest.raises(openai.BadRequestError, match=r"input\[0\] has token id 99999"):
        client.embeddings.create(model=BERT, input=[5, 99999])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"input": ["a", ""]}, "input: item 1 is empty"),
        ({"input": ""}, "input: an empty string"),
        ({"input": ["a"] * 2049}, "input: 1 to 2048 inputs"),
        ({"input": LONG}, r"input\[0\] is 302 tokens"),  # OpenAI has no truncate: refused
        ({"input": "a", "dimensions": 0}, "dimensions"),
    ],
)
def test_openai_bad_requests_are_400s_naming_the_field(
    client: openai.OpenAI, body: dict, expected: str
) -> None:
    with pytest.raises(openai.BadRequestError, match=expected):
        client.embeddings.create(model=BERT, **body)


def test_ollama_embed_matches_openai(ollama_client: ollama.Client, client: openai.OpenAI) -> None:
    reply = ollama_client.embed(model=NOMIC, input=TEXTS)
    openai_reply = client.embeddings.create(model=NOMIC, input=TEXTS, encoding_format="float")
    assert len(reply.embeddings) == 3
    for got, want in zip(reply.embeddings, openai_reply.data, strict=True):
        assert norm(got) == pytest.approx(1.0, abs=1e-5)
        assert cosine(got, want.embedding) >= SAME
    assert reply.prompt_eval_count == openai_reply.usage.prompt_tokens
    assert reply.total_duration and reply.total_duration >= (reply.load_duration or 0)
    single = ollama_client.embed(model=NOMIC, input=TEXTS[0], dimensions=8)
    assert len(single.embeddings) == 1 and len(single.embeddings[0]) == 8
    assert norm(single.embeddings[0]) == pytest.approx(1.0, abs=1e-5)


def test_ollama_truncates_unless_told_not_to(ollama_client: ollama.Client) -> None:
    reply = ollama_client.embed(model=BERT, input=[LONG, "a"])
    assert len(reply.embeddings) == 2 and reply.prompt_eval_count == 128 + 3
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.embed(model=BERT, input=[LONG], truncate=False)
    assert caught.value.status_code == 400 and "302 tokens" in caught.value.error


def test_ollama_legacy_embeddings(ollama_client: ollama.Client) -> None:
    legacy = ollama_client.embeddings(model=BERT, prompt=TEXTS[0])
    current = ollama_client.embed(model=BERT, input=TEXTS[0])
    assert cosine(list(legacy.embedding), current.embeddings[0]) >= SAME
    assert ollama_client.embeddings(model=BERT, prompt="").embedding == []  # loads only


def test_ollama_empty_input_loads_and_keep_alive_zero_unloads(
    ollama_client: ollama.Client, server: RunningServer
) -> None:
    assert ollama_client.embed(model=NOMIC, input=[]).embeddings == []
    loaded = [m.model for m in ollama_client.ps().models]
    assert any("tiny-nomic" in name.lower() for name in loaded), loaded
    ollama_client.embed(model=NOMIC, input="", keep_alive=0)
    loaded = [m.model for m in ollama_client.ps().models]
    assert not any("tiny-nomic" in name.lower() for name in loaded), loaded


def test_show_says_embedding(server: RunningServer, ollama_client: ollama.Client) -> None:
    ollama_client.embed(model=BERT, input="pulled by now")
    shown = ollama_client.show(BERT)
    assert list(shown.capabilities or []) == ["embedding"]


def test_a_generative_model_makes_no_embeddings(
    client: openai.OpenAI, ollama_client: ollama.Client
) -> None:
    with pytest.raises(openai.BadRequestError, match="gemma-3-270m is not an embedding model"):
        client.embeddings.create(model="gemma-3-270m", input="hello")
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.embed(model="gemma-3-270m", input="hello")
    assert caught.value.status_code == 400 and "not an embedding model" in caught.value.error


def test_a_reranker_makes_no_embeddings(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="is a reranker"):
        client.embeddings.create(model=RERANK, input="hello")


def test_an_embedding_model_does_not_chat(
    client: openai.OpenAI, ollama_client: ollama.Client
) -> None:
    messages = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.BadRequestError, match="is an embedding model"):
        client.chat.completions.create(model=BERT, messages=messages, max_tokens=4)
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.chat(model=BERT, messages=messages)
    assert caught.value.status_code == 400 and "is an embedding model" in caught.value.error
