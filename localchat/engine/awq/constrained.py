"""Grammars on the AWQ backend: the same GBNF the llama.cpp sampler enforces, enforced on
transformers' logits by llguidance (the constrained-decoding library llama.cpp and vLLM
use; the ``awq`` extra installs it).

``GrammarConstraint`` masks the logits to the tokens the grammar allows next and advances
the grammar with each token drawn.  A lazy grammar (``SamplingParams.grammar_triggers``:
a tool call that starts at the model's call marker) lets text through until a trigger
pattern matches the reply so far; the grammar then starts at the pattern's first capture
group (or the match), fed the text from there on, and holds every token after.

llguidance is imported on first use (it is optional, like torch).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

from localchat.errors import BackendUnavailable, InvalidRequest
from localchat.types import SamplingParams

INSTALL_HINT = 'install the AWQ extra: pip install "localchat[awq]" (it brings llguidance)'


class GrammarTokenizer:
    """llguidance's view of one model's tokenizer (built once per loaded model)."""

    def __init__(self, hf_tokenizer: Any, end_ids: Collection[int]) -> None:
        llguidance_hf = _llguidance("hf")
        self.native = llguidance_hf.from_tokenizer(hf_tokenizer, eos_token=sorted(end_ids))

    def constraint(
        self, sampling: SamplingParams, detokenizer: Callable[[], Any]
    ) -> GrammarConstraint | None:
        """The constraint for one generation, or None without a grammar."""
        if not sampling.grammar or not sampling.grammar.strip():
            return None
        return GrammarConstraint(self, sampling.grammar, sampling.grammar_triggers, detokenizer)


class GrammarConstraint:
    """One generation's grammar: ``mask(logits)`` before each draw, ``accept(token)`` after."""

    def __init__(
        self,
        tokenizer: GrammarTokenizer,
        grammar: str,
        triggers: Sequence[str],
        detokenizer: Callable[[], Any],
    ) -> None:
        llguidance = _llguidance()
        self.tokenizer = tokenizer
        try:
            lark = llguidance.grammar_from("gbnf", grammar)
        except ValueError as exc:
            raise InvalidRequest(f"the grammar does not convert for llguidance: {exc}") from exc
        self.matcher = llguidance.LLMatcher(tokenizer.native, lark, log_level=0)
        if self.matcher.is_error():
            raise InvalidRequest(f"the grammar is not usable: {self.matcher.get_error()}")
        self.triggers = [re.compile(pattern) for pattern in triggers]
        self.active = not triggers
        self.text = ""  # the reply so far, while a lazy grammar waits for its trigger
        self.detokenizer = detokenizer() if triggers else None

    def mask(self, torch: Any, logits: Any) -> Any:
        """``logits`` with every token the grammar refuses at -inf (and any past the
        tokenizer's vocabulary, where a model pads its output layer)."""
        if not self.active:
            return logits
        bias = self.matcher.compute_logit_bias()  # one byte a token: 0 refused, else allowed
        allowed = torch.frombuffer(bytearray(bias), dtype=torch.uint8).to(logits.device)
        width = min(len(bias), logits.shape[-1])
        refused = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
        refused[:width] = allowed[:width] == 0
        return logits.masked_fill(refused, float("-inf"))

    def accept(self, token: int) -> None:
        if self.active:
            if not self.matcher.consume_token(token):
                raise InvalidRequest(f"the grammar refused a token: {self.matcher.get_error()}")
            return
        assert self.detokenizer is not None
        self.text += self.detokenizer.feed(token)
        self._maybe_trigger()

    def _maybe_trigger(self) -> None:
        for pattern in self.triggers:
            match = pattern.search(self.text)
            if match is None:
                continue
            start = match.start(1) if match.re.groups else match.start()
            grammar_text = self.text[start:]
            tokens = self.tokenizer.native.tokenize_str(grammar_text)
            if not self.matcher.consume_tokens(tokens):
                raise InvalidRequest(
                    f"the grammar refused its trigger's text: {self.matcher.get_error()}"
                )
            self.active = True
            return


def _llguidance(module: str = "") -> Any:
    name = f"llguidance.{module}" if module else "llguidance"
    try:
        return importlib.import_module(name)  # optional: imported only with a grammar
    except ImportError as exc:
        raise BackendUnavailable(
            "structured output and tool calls on AWQ models need llguidance", hint=INSTALL_HINT
        ) from exc
