"""Slots and continuous batching on the real llama.cpp with the real gemma-3-270m (issue 17).

One context, ``n_parallel`` sequences in a unified KV cache, one decode thread; streams
started from many threads at once.  What is checked: every stream gets its own text,
cancelling one leaves the others' text alone, a long prompt is prefilled in chunks
between the running streams' tokens, the cache never overflows, the prompt cache and
``n`` choices decode a prompt once, and a grammar forces the base model's output.

llama.cpp does not promise that a sequence decodes bit-identically alone and inside a
bigger batch (its matrix kernels change with the batch's shape).  So batched text is
compared with solo text by how many leading tokens agree (``greedy_agreement``), the
figure is printed, and only the start is required to match.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localchat.engine.llama import LlamaBackend
from localchat.engine.settings import LlamaSettings
from localchat.errors import EngineError, InvalidRequest
from localchat.types import PromptSpec, SamplingParams, TextStream
from tests.fixtures.distinct_prompts import PROMPTS

pytestmark = [pytest.mark.llama, pytest.mark.slow]
pytest.importorskip("llama_cpp")

N_SLOTS = 8
CTX_PER_SLOT = 256
GREEDY = SamplingParams(temperature=0.0, max_tokens=24, stop_on_repetition=False)


@pytest.fixture(scope="module")
def backend(gemma_path: Path) -> Iterator[LlamaBackend]:
    settings = LlamaSettings(
        model_path=gemma_path,
        n_ctx=N_SLOTS * CTX_PER_SLOT,
        n_parallel=N_SLOTS,
        n_threads=2,
        n_threads_batch=2,
    )
    loaded = LlamaBackend(settings)
    yield loaded
    loaded.close()


def run_together(streams: list[TextStream]) -> list[str]:
    """Read every stream in its own thread, as a server's requests would be."""
    texts = [""] * len(streams)

    def read(index: int) -> None:
        texts[index] = "".join(streams[index])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(streams))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return texts


def slots_free(backend: LlamaBackend, timeout_s: float = 5.0) -> bool:
    """Every slot released (the decode thread frees a slot just after its last token)."""
    deadline = time.monotonic() + timeout_s
    while any(slot.busy for slot in backend._scheduler.slots):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def leading_agreement(solo: list[int], batched: list[int]) -> int:
    """How many leading tokens the batched run shares with the solo run."""
    same = next((i for i, (a, b) in enumerate(zip(solo, batched, strict=False)) if a != b), None)
    return min(len(solo), len(batched)) if same is None else same


def test_eight_streams_get_their_own_text(backend: LlamaBackend) -> None:
    solo = {prompt: "".join(backend.stream(PromptSpec(prompt), GREEDY)) for prompt in PROMPTS}
    streams = [backend.stream(PromptSpec(prompt), GREEDY) for prompt in PROMPTS]
    batched = dict(zip(PROMPTS, run_together(streams), strict=True))
    tokens = backend._model.tokenize  # the texts' tokens (re-tokenized: close enough here)
    agreement = {
        p: leading_agreement(
            tokens(solo[p], add_special=False), tokens(batched[p], add_special=False)
        )
        for p in PROMPTS
    }
    share = sum(agreement.values()) / sum(len(tokens(solo[p], add_special=False)) for p in PROMPTS)
    print(
        f"greedy agreement, batched vs solo: {share:.2f} of the tokens; leading tokens {agreement}"
    )
    for prompt, word in PROMPTS.items():
        assert word in batched[prompt], (prompt, batched[prompt])
        others = [w for p, w in PROMPTS.items() if p != prompt and len(w) > 2]
        assert not any(w in batched[prompt] for w in others if w not in solo[prompt]), batched
        assert agreement[prompt] >= 1  # the first token (from the prompt's logits) agrees
    assert share > 0.5
    for stream in streams:
        assert stream.stats.finish_reason == "length" and stream.stats.completion_tokens == 24
        assert stream.stats.time_to_first_token_s is not None
        assert stream.stats.decode_tokens_per_s and stream.stats.decode_tokens_per_s > 0


def test_cancelling_one_stream_leaves_the_others_text_unchanged(backend: LlamaBackend) -> None:
    # sequences the model continues with confidence: the batch changing shape when the
    # victim leaves cannot tip them (see the module docstring), a damaged cache would
    prompts = ["1, 2, 3, 4, 5,", "A, B, C, D, E,", "January, February, March,", "10, 20, 30,"]
    short = SamplingParams(temperature=0.0, max_tokens=16, stop_on_repetition=False)
    reference = run_together([backend.stream(PromptSpec(p), short) for p in prompts])
    assert reference[0].startswith(" 6, 7, 8") and reference[2].startswith(" April, May")
    streams = [backend.stream(PromptSpec(p), short) for p in prompts]
    victim = streams[1]
    first = next(victim)
    victim.close()  # from this (the consumer's) thread, mid-stream
    texts = run_together([s for s in streams if s is not victim])
    assert victim.stats.finish_reason == "cancelled"
    assert reference[1].startswith(first)
    assert texts == [reference[0], *reference[2:]]
    assert slots_free(backend)  # the victim's slot too


def test_a_request_waits_for_a_slot_and_a_stop_string_frees_one(backend: LlamaBackend) -> None:
    held = [backend.stream(PromptSpec(p), GREEDY) for p in PROMPTS]  # every slot taken
    waiting = backend.stream(PromptSpec("Knock knock. Who's there?"), GREEDY)
    stopper = backend.stream(PromptSpec("1, 2, 3,", stop_strings=(" 5",)), GREEDY)
    texts = run_together([*held, waiting, stopper])
    assert texts[-2].strip() and texts[-1] == " 4,"
    assert stopper.stats.finish_reason == "stop"


def test_a_long_prompt_is_prefilled_between_a_running_streams_tokens(gemma_path: Path) -> None:
    n_batch = 256
    settings = LlamaSettings(
        model_path=gemma_path, n_ctx=2 * 2560, n_parallel=2, n_batch=n_batch, n_ubatch=n_batch,
        n_threads=2, n_threads_batch=2,
    )  # fmt: skip
    backend = LlamaBackend(settings)
    try:
        long_prompt = "The history of the lighthouse keeper and the sea. " * 200
        n_long = backend.count_tokens(long_prompt)
        assert 1800 < n_long < 2500
        chunk_s = backend.time_prompt(n_batch)  # one prefill chunk, alone
        sampling = SamplingParams(temperature=0.0, max_tokens=40, stop_on_repetition=False)
        runner = backend.stream(PromptSpec("Write a long story about a dragon."), sampling)
        arrivals = []
        long_stream: TextStream | None = None
        for _piece in runner:
            arrivals.append(time.perf_counter())
            if len(arrivals) == 5:  # mid-stream: the long prompt arrives
                long_stream = backend.stream(PromptSpec(long_prompt), GREEDY)
        assert long_stream is not None
        long_text = "".join(long_stream)
    finally:
        backend.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals[4:])]
    n_chunks = -(-n_long // n_batch)
    print(f"{n_long}-token prompt in {n_chunks} chunks of {n_batch}; one chunk alone "
          f"{chunk_s:.2f} s; the running stream's longest gap {max(gaps):.2f} s")  # fmt: skip
    assert long_text.strip() and long_stream.stats.prompt_tokens == n_long + 1  # + BOS
    # one chunk (plus the stream's own token) per step: never the whole prompt at once
    assert max(gaps) < 3 * chunk_s < n_chunks * chunk_s


def test_the_unified_cache_never_overflows(backend: LlamaBackend, gemma_path: Path) -> None:
    too_long = "word " * (CTX_PER_SLOT + 10)
    with pytest.raises(EngineError, match=f"but the context holds {CTX_PER_SLOT}"):
        backend.stream(PromptSpec(too_long), GREEDY)
    # three slots of 96 tokens each decode until their own context is full, together
    small = LlamaBackend(
        LlamaSettings(model_path=gemma_path, n_ctx=3 * 96, n_parallel=3, n_threads=2)
    )
    try:
        until_full = SamplingParams(temperature=0.0, max_tokens=0, stop_on_repetition=False)
        prompts = ["Count with me: " + "1, 2, 3, " * i for i in (1, 3, 5, 2)]  # 4 for 3 slots
        streams = [small.stream(PromptSpec(p), until_full) for p in prompts]
        run_together(streams)
    finally:
        small.close()
    for stream in streams:
        stats = stream.stats
        assert stats.finish_reason in ("length", "stop"), stats
        assert stats.prompt_tokens + stats.completion_tokens <= 96
        if stats.finish_reason == "length":
            assert stats.prompt_tokens + stats.completion_tokens == 96


def test_a_continued_conversation_reuses_its_slots_cache(backend: LlamaBackend) -> None:
    scheduler = backend._scheduler
    first = PromptSpec("Question: What is the capital of Italy?\nAnswer:")
    reply = "".join(backend.stream(first, GREEDY))
    other = "".join(backend.stream(PromptSpec("Lorem ipsum dolor sit amet"), GREEDY))
    assert other
    follow_up = PromptSpec(first.text + reply + "\nQuestion: And of Spain?\nAnswer:")
    before = scheduler.prefilled_tokens
    "".join(backend.stream(follow_up, GREEDY))
    new_tokens = backend.count_tokens("\nQuestion: And of Spain?\nAnswer:")
    prefilled = scheduler.prefilled_tokens - before
    assert prefilled <= new_tokens + 3  # only what the slot's cache lacks (tokenization may merge)
    assert prefilled < backend.count_tokens(follow_up.text) / 2


def test_n_choices_share_one_prefill(backend: LlamaBackend) -> None:
    scheduler = backend._scheduler
    prompt = PromptSpec("Once upon a time in a small village, " * 3)
    n_prompt = backend.count_tokens(prompt.text) + 1  # + BOS
    before = scheduler.prefilled_tokens
    greedy = run_together(backend.stream_choices(prompt, GREEDY, 3))
    assert scheduler.prefilled_tokens - before <= n_prompt
    first, *others = [backend._model.tokenize(text, add_special=False) for text in greedy]
    assert first  # each choice's first token comes from the same logits: the same token;
    assert all(leading_agreement(first, other) >= 1 for other in others)  # later ones may drift
    sampled = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=11, max_tokens=24)
    texts = run_together(backend.stream_choices(PromptSpec("Write a poem: "), sampled, 3))
    assert len(set(texts)) == 3  # seeds 11, 12, 13
    with pytest.raises(InvalidRequest, match="runs 8 at once"):
        backend.stream_choices(prompt, GREEDY, N_SLOTS + 1)


def test_a_grammar_forces_the_base_models_output(backend: LlamaBackend) -> None:
    yes_no = SamplingParams(temperature=0.8, seed=5, max_tokens=8, grammar='root ::= "yes" | "no"')
    for question in ("Is the sky green? Answer:", "Write a long essay about whales."):
        stream = backend.stream(PromptSpec(question), yes_no)
        assert "".join(stream) in ("yes", "no")
        assert stream.stats.finish_reason == "stop"  # the grammar ends, so does the reply
    for bad in ('root ::= "yes" |(', 'rooot ::= "yes"', "root ::= undefined-rule"):
        with pytest.raises(InvalidRequest, match="does not parse"):
            backend.stream(PromptSpec("Hi"), SamplingParams(grammar=bad))
    with pytest.raises(InvalidRequest, match="trigger pattern"):
        backend.stream(
            PromptSpec("Hi"), SamplingParams(grammar='root ::= "x"', grammar_triggers=("(?<=a)b",))
        )
    assert slots_free(backend)


def test_a_lazy_grammar_starts_at_its_trigger(backend: LlamaBackend) -> None:
    counting = PromptSpec("1, 2, 3, 4,")
    free = "".join(backend.stream(counting, GREEDY))
    assert free.startswith(" 5, 6, 7")  # what the model writes on its own
    lazy = SamplingParams(
        temperature=0.0,
        max_tokens=24,
        stop_on_repetition=False,
        grammar='root ::= "6" " is six"',
        grammar_triggers=("6",),
    )
    stream = backend.stream(counting, lazy)
    assert "".join(stream) == " 5, 6 is six"  # free text until "6", then the grammar, then end
    assert stream.stats.finish_reason == "stop"
