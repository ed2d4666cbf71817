"""A sequence's sampler chain (``llama_sampler``): grammar, penalties, top-k/p, min-p,
temperature and the seeded draw, applied to its logits in the batch.

With a grammar, a token is drawn the way llama-server draws it: first without the
grammar, then that one token is checked against it.  Only when the grammar refuses it is
the token drawn again, from what the grammar allows among the model's ``SHORTLIST`` most
likely tokens, and from the whole vocabulary masked by the grammar when none of those is
allowed.  Masking a 262k vocabulary costs several forward passes of a small model;
checking one token, or a shortlist, costs almost nothing.  Greedy decoding picks exactly
the token the grammar-first order would; a sampled reply always obeys the grammar, with a
draw that favours the model's own top choices as llama-server's does.

A grammar that does not parse is an ``InvalidRequest`` here, before anything runs:
llama.cpp answers NULL for a bad GBNF string, but a lazy grammar's trigger pattern
goes to ``std::regex``, which throws through the C API and ends the process.  So a
trigger pattern must be a regex Python's ``re`` accepts *and* use nothing ECMAScript
regexes lack (checked by ``check_trigger_pattern``; each case that crashes llama.cpp
is in ``tests/unit/test_llamacpp_sampler.py``).
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from localchat.errors import InvalidRequest
from localchat.llamacpp._bindings import C
from localchat.llamacpp.context import LlamaContext
from localchat.llamacpp.library import library
from localchat.llamacpp.model import LlamaModel
from localchat.types import SamplingParams

PENALTY_LAST_N = 64  # tokens the repeat/presence/frequency penalties look back over
SHORTLIST = 512  # tokens checked against the grammar before the whole vocabulary is
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
_GROUP_EXTENSIONS = frozenset(":=!")  # (?:  (?=  (?!  - the only (?...) ECMAScript has
_QUANTIFIER = re.compile(r"\{\d+(,\d*)?\}")


class Sampler:
    """One sequence's sampler chain; ``close()`` frees it."""

    def __init__(
        self, model: LlamaModel, sampling: SamplingParams, *, seed: int, history: Sequence[int] = ()
    ) -> None:
        chain_params = C.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._chain = C.llama_sampler_chain_init(chain_params)
        self._grammar: C.llama_sampler_p | None = None  # not in the chain: see the docstring
        self._candidates: _Candidates | None = None
        # Without penalties no sampler of the chain keeps state when a token is accepted,
        # so the chain may draw (and accept) a token the grammar then refuses.
        self._stateless = not _penalised(sampling)
        try:
            if sampling.grammar and sampling.grammar.strip():
                self._grammar = _grammar(model, sampling.grammar, sampling.grammar_triggers)
                self._candidates = _Candidates(model.n_vocab)
            self._build(sampling, seed, history)
        except BaseException:
            self.close()
            raise

    def _build(self, sampling: SamplingParams, seed: int, history: Sequence[int]) -> None:
        if _penalised(sampling):
            penalties = C.llama_sampler_init_penalties(
                # llama-cpp-python binds this with an extra leading n_vocab argument that
                # llama.h does not have; passing the look-back twice is right either way
                PENALTY_LAST_N,
                PENALTY_LAST_N,
                sampling.repeat_penalty,
                sampling.frequency_penalty,
                sampling.presence_penalty,
            )
            for token in history[-PENALTY_LAST_N:]:  # the prompt counts as seen text
                C.llama_sampler_accept(penalties, token)
            self._add(penalties)
        if sampling.temperature <= 0:
            self._add(C.llama_sampler_init_greedy())
            return
        if sampling.top_k > 0:
            self._add(C.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            self._add(C.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0.0:
            self._add(C.llama_sampler_init_min_p(sampling.min_p, 1))
        self._add(C.llama_sampler_init_temp(sampling.temperature))
        self._add(C.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def _add(self, sampler: C.llama_sampler_p) -> None:
        C.llama_sampler_chain_add(self._chain, sampler)  # the chain owns it from here

    def sample(self, context: LlamaContext, index: int) -> int:
        """Draw the next token from the logits at ``index`` of the last batch (and
        accept it: the grammar and penalties advance)."""
        if self._grammar is None or self._candidates is None:
            return int(C.llama_sampler_sample(self._chain, context.handle, index))
        logits = C.llama_get_logits_ith(context.handle, index)
        candidates = self._candidates
        if self._stateless:  # the draw in C, as without a grammar
            token = int(C.llama_sampler_sample(self._chain, context.handle, index))
        else:
            token = candidates.draw(self._chain, logits)
        if not _allows(self._grammar, token):
            token = candidates.draw_allowed(self._chain, self._grammar, logits)
        C.llama_sampler_accept(self._grammar, token)
        if not self._stateless:
            C.llama_sampler_accept(self._chain, token)
        return token

    def close(self) -> None:
        chain, self._chain = self._chain, None
        if chain:
            C.llama_sampler_free(chain)
        grammar, self._grammar = self._grammar, None
        if grammar:
            C.llama_sampler_free(grammar)


class _Candidates:
    """One sequence's buffers of (token, logit, p): the whole vocabulary, and a shortlist."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self.ids = np.arange(n_vocab, dtype=np.int32)
        self.data, self.array = _token_data(n_vocab)
        self.shortlist = min(SHORTLIST, n_vocab)
        self.short, self.short_array = _token_data(self.shortlist)

    def draw(
        self, chain: C.llama_sampler_p, logits: object, first: C.llama_sampler_p | None = None
    ) -> int:
        """The token ``chain`` draws from ``logits`` (after ``first``, if given), without
        accepting it."""
        self.data["id"] = self.ids  # the samplers sort and cut the array in place
        self.data["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self.data["p"] = 0.0
        return _apply(self.array, self.n_vocab, first, chain)

    def draw_allowed(
        self, chain: C.llama_sampler_p, grammar: C.llama_sampler_p, logits: object
    ) -> int:
        """The token ``chain`` draws among those ``grammar`` allows: from the shortlist of
        the most likely ones if it allows any, else from the whole vocabulary."""
        view = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        top = np.argpartition(view, -self.shortlist)[-self.shortlist :]
        self.short["id"] = top
        self.short["logit"] = view[top]
        self.short["p"] = 0.0
        self.short_array.size, self.short_array.selected = self.shortlist, -1
        self.short_array.sorted = False
        C.llama_sampler_apply(grammar, ctypes.byref(self.short_array))
        size = self.short_array.size
        if not np.isfinite(self.short["logit"][:size]).any():
            return self.draw(chain, logits, first=grammar)
        return _apply(self.short_array, size, None, chain)


def _token_data(size: int) -> tuple[np.ndarray[Any, Any], C.llama_token_data_array]:
    data = np.zeros(size, dtype=_TOKEN_DATA)
    pointer = ctypes.cast(data.ctypes.data, ctypes.POINTER(C.llama_token_data))
    return data, C.llama_token_data_array(pointer, size, -1, False)


def _apply(
    array: C.llama_token_data_array,
    size: int,
    first: C.llama_sampler_p | None,
    chain: C.llama_sampler_p,
) -> int:
    """Run ``first`` (if given) and ``chain`` over the first ``size`` entries of ``array``;
    the token selected."""
    array.size, array.selected, array.sorted = size, -1, False
    if first is not None:
        C.llama_sampler_apply(first, ctypes.byref(array))
    C.llama_sampler_apply(chain, ctypes.byref(array))
    return int(array.data[array.selected].id)  # a sampler may move ``data``


def _allows(grammar: C.llama_sampler_p, token: int) -> bool:
    """Whether the grammar, in its present state, allows ``token`` next."""
    one = (C.llama_token_data * 1)(C.llama_token_data(token, 1.0, 0.0))
    single = C.llama_token_data_array(one, 1, -1, False)
    C.llama_sampler_apply(grammar, ctypes.byref(single))
    return not math.isinf(one[0].logit)


def _penalised(sampling: SamplingParams) -> bool:
    return (
        sampling.repeat_penalty != 1.0
        or sampling.presence_penalty != 0.0
        or sampling.frequency_penalty != 0.0
    )


def _grammar(model: LlamaModel, grammar: str, triggers: Sequence[str]) -> C.llama_sampler_p:
    for pattern in triggers:
        check_trigger_pattern(pattern)
    text = grammar.encode("utf-8")
    sampler: C.llama_sampler_p
    with library().log.native_stderr():  # the parser prints its errors to stderr
        sampler = _grammar_sampler(model, text, triggers)
    if not sampler:
        raise InvalidRequest(
            "the grammar does not parse as GBNF (or has no `root` rule)",
            hint="see llama.log for where llama.cpp's grammar parser stopped",
        )
    return sampler


def _grammar_sampler(model: LlamaModel, text: bytes, triggers: Sequence[str]) -> C.llama_sampler_p:
    if triggers:
        patterns = (ctypes.c_char_p * len(triggers))(*(p.encode("utf-8") for p in triggers))
        no_tokens = (C.llama_token * 0)()
        sampler: C.llama_sampler_p = C.llama_sampler_init_grammar_lazy_patterns(
            model.vocab, text, b"root", patterns, len(triggers), no_tokens, 0
        )
        return sampler
    sampler = C.llama_sampler_init_grammar(model.vocab, text, b"root")
    return sampler


def check_trigger_pattern(pattern: str) -> None:
    """``InvalidRequest`` unless ``pattern`` is a regex both Python and ECMAScript take."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _bad_trigger(pattern, str(exc)) from None
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith("]", index + 1) or pattern.startswith("^]", index + 1):
                index += 1  # a leading ] is literal
        elif char == "(" and pattern.startswith("?", index + 1):
            if pattern[index + 2 : index + 3] not in _GROUP_EXTENSIONS:
                raise _bad_trigger(pattern, "only (?:...), (?=...) and (?!...) groups work here")
        elif char == "{" and not _QUANTIFIER.match(pattern, index):
            raise _bad_trigger(pattern, "a literal { must be escaped as \\{")
        index += 1


def _bad_trigger(pattern: str, why: str) -> InvalidRequest:
    shown = pattern if len(pattern) <= 60 else pattern[:59] + "…"
    return InvalidRequest(f"grammar trigger pattern {shown!r} is not usable: {why}")
