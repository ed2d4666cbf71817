"""One ``llama_batch``: the tokens a single ``llama_decode`` processes, for any sequences."""

from __future__ import annotations

from collections.abc import Sequence

from localchat.llamacpp._bindings import C


class Batch:
    """Up to ``capacity`` tokens, each with its position, sequences and whether its
    logits are wanted.  ``clear()`` and ``add()`` reuse the same C arrays."""

    def __init__(self, capacity: int, n_seq_max: int) -> None:
        self.capacity = capacity
        self.n_seq_max = n_seq_max
        self.c_batch = C.llama_batch_init(capacity, 0, n_seq_max)
        self._tokens = self.c_batch.token
        self._positions = self.c_batch.pos
        self._n_seq_ids = self.c_batch.n_seq_id
        self._seq_ids = self.c_batch.seq_id
        self._logits = self.c_batch.logits
        self.n_tokens = 0
        self._closed = False

    @property
    def room(self) -> int:
        return self.capacity - self.n_tokens

    def clear(self) -> None:
        self.n_tokens = 0
        self.c_batch.n_tokens = 0

    def add(self, token: int, position: int, seq_id: int, *, logits: bool) -> int:
        """Append a token of one sequence; its index in the batch (where its logits are)."""
        index = self.n_tokens
        self._tokens[index] = token
        self._positions[index] = position
        self._n_seq_ids[index] = 1
        self._seq_ids[index][0] = seq_id
        self._logits[index] = logits
        self.n_tokens = index + 1
        self.c_batch.n_tokens = self.n_tokens
        return index

    def add_run(
        self, tokens: Sequence[int], first_position: int, seq_id: int, *, last_logits: bool
    ) -> int:
        """Append consecutive tokens of one sequence; logits only for the last one when
        ``last_logits``.  The index of the last token."""
        index = -1
        last = len(tokens) - 1
        for offset, token in enumerate(tokens):
            index = self.add(
                token, first_position + offset, seq_id, logits=last_logits and offset == last
            )
        return index

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            C.llama_batch_free(self.c_batch)
