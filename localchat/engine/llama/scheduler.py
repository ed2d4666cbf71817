"""Continuous batching: one decode thread runs every slot of one llama.cpp context.

Each step builds one batch: the next token of every generating slot, then chunks of
pending prompts up to ``n_batch`` tokens (a long prompt is prefilled over several
steps, interleaved with the running decodes instead of stalling them), then one
``llama_decode``, then each slot samples at its own batch index with its own sampler.

Requests wait in arrival order until enough slots are free (``n`` choices take ``n``
slots).  A request goes to the free slot whose cache holds the longest prefix of its
prompt (llama-server's prompt cache): only the rest is prefilled.  ``n`` choices
share the prompt: it is decoded once in the leader's sequence and copied to the
others' (``llama_memory_seq_cp``), which then sample from the same logits.

Each slot holds at most ``n_ctx_per_seq`` tokens (the backend caps prompt plus budget
at it), so the unified cache of ``n_slots × n_ctx_per_seq`` cells never overflows and
``llama_decode`` never runs out of room.  Should it still answer "no KV slot", the
prompt chunks are halved; with none left to halve, the slots of that batch fail with
an ``EngineError``: never a silent truncation.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from localchat.engine.llama.slots import Request, Slot, common_prefix
from localchat.errorlog import write_traceback
from localchat.errors import EngineError, LocalchatError
from localchat.llamacpp.batch import Batch
from localchat.llamacpp.context import DECODE_NO_KV_SLOT, DECODE_OK, LlamaContext

IsEnd = Callable[[int, frozenset[int]], bool]  # token, the request's stop ids
CLOSE_WAIT_S = 30.0
MIN_PREFIX_SHARE = 0.1  # a cached prefix this share of the prompt picks the slot (llama-server)


class Scheduler:
    """The decode thread and its slots; ``submit`` from any thread."""

    def __init__(self, context: LlamaContext, *, is_end: IsEnd) -> None:
        self.context = context
        self._is_end = is_end
        self.slots = [Slot(seq_id) for seq_id in range(context.n_seq_max)]
        self._batch = Batch(context.n_batch, context.n_seq_max)
        self._prefill_cap = context.n_batch  # halved when llama.cpp finds no KV room
        self._waiting: deque[Request] = deque()
        self._lock = threading.Lock()  # guards _waiting and _stopping
        self._context_lock = threading.Lock()  # held while a step (or a bench run) uses it
        self._wake = threading.Event()
        self._stopping = False
        self._failure: LocalchatError | None = None
        self.prefilled_tokens = 0  # prompt tokens decoded so far (a cached prefix is not)
        self._thread = threading.Thread(target=self._run, name="llama-decode", daemon=True)
        self._thread.start()

    # -- any thread ----------------------------------------------------------

    def submit(self, request: Request) -> None:
        with self._lock:
            failure = self._failure or (
                EngineError("the model was closed") if self._stopping else None
            )
            if failure is None:
                self._waiting.append(request)
        if failure is not None:
            request.close()
            raise failure
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @contextmanager
    def exclusive(self) -> Iterator[LlamaContext]:
        """The context to oneself, between steps (``localchat bench``'s timing runs)."""
        with self._context_lock:
            yield self.context

    def close(self) -> bool:
        """Stop the decode thread (streams still running end with an ``EngineError``);
        False when it did not stop in time, and the context must not be freed."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._thread.join(CLOSE_WAIT_S)
        if self._thread.is_alive():
            return False
        self._batch.close()
        return True

    # -- the decode thread ---------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._wake.clear()
                with self._context_lock:
                    self._release_cancelled()  # first: the slots it frees can be admitted to
                    self._admit()
                    worked = self._step()
                if not worked:
                    self._wake.wait()
        except BaseException as exc:  # a bug: every stream gets the error, none hangs
            write_traceback(exc, context="the llama.cpp decode loop")
            self._fail_all(EngineError(f"the llama.cpp decode loop failed: {exc!r}"))
            return
        self._fail_all(EngineError("the model was closed"))

    def _fail_all(self, error: LocalchatError) -> None:
        with self._lock:
            self._failure = self._failure or error
            waiting, self._waiting = list(self._waiting), deque()
        for request in waiting:
            request.close(error)
        for slot in self.slots:
            slot.release(error)

    def _admit(self) -> None:
        """Start waiting requests, in arrival order, while enough slots are free."""
        while True:
            with self._lock:
                if not self._waiting:
                    return
                request = self._waiting[0]
                free = [slot for slot in self.slots if not slot.busy]
                if not request.abandoned() and len(free) < request.n_choices:
                    return
                self._waiting.popleft()
            if request.abandoned():
                request.close()
            else:
                self._start(request, free)

    def _start(self, request: Request, free: list[Slot]) -> None:
        leader = _pick_leader(free, request.prompt)
        kept = min(common_prefix(leader.cached, request.prompt), len(request.prompt) - 1)
        if not self.context.seq_remove(leader.seq_id, kept, -1):
            self.context.seq_remove(leader.seq_id)  # a model that cannot cut a sequence
            kept = 0
        leader.start(request, 0, kept)
        others = sorted((slot for slot in free if slot is not leader), key=lambda s: s.last_used)
        for choice, follower in enumerate(others[: request.n_choices - 1], start=1):
            self.context.seq_remove(follower.seq_id)
            follower.start(request, choice, 0)
            leader.followers.append(follower)

    def _release_cancelled(self) -> None:
        for slot in self.slots:
            if slot.busy and slot.channel.cancelled and not _prefills_for_others(slot):
                slot.release()

    def _step(self) -> bool:
        """Decode one batch; False when there was nothing to do."""
        batch = self._batch
        batch.clear()
        decoding = [slot for slot in self.slots if slot.busy and slot.wants_decode()]
        for slot in decoding:
            assert slot.next_token is not None
            slot.logits_index = batch.add(
                slot.next_token, len(slot.cached), slot.seq_id, logits=True
            )
        prefills = self._add_prefill_chunks(batch)
        if batch.n_tokens == 0:
            return False
        status = self.context.decode(batch)
        if status != DECODE_OK:
            self._decode_failed(status, decoding, [slot for slot, _ in prefills])
            return True
        self._prefill_cap = self.context.n_batch
        sampling = self._after_decode(decoding, prefills)
        for slot in sampling:
            self._emit(slot, slot.sampler.sample(self.context, slot.logits_index))
        return True

    def _add_prefill_chunks(self, batch: Batch) -> list[tuple[Slot, int]]:
        """Pending prompt tokens, oldest request first, up to the batch's room."""
        chunks: list[tuple[Slot, int]] = []
        prefilling = [slot for slot in self.slots if slot.busy and slot.pending]
        prefilling.sort(key=lambda slot: slot.request.arrived_at if slot.request else 0.0)
        room = min(batch.room, max(self._prefill_cap - batch.n_tokens, 1))
        for slot in prefilling:
            if room <= 0:
                break
            chunk = slot.pending[:room]
            last = len(chunk) == len(slot.pending)
            index = batch.add_run(chunk, len(slot.cached), slot.seq_id, last_logits=last)
            slot.logits_index = index if last else -1
            chunks.append((slot, len(chunk)))
            room -= len(chunk)
        return chunks

    def _after_decode(self, decoding: list[Slot], prefills: list[tuple[Slot, int]]) -> list[Slot]:
        """Move what was decoded into the slots' caches; the slots that sample now."""
        sampling: list[Slot] = []
        for slot in decoding:
            assert slot.next_token is not None
            slot.cached.append(slot.next_token)
            slot.next_token = None
            sampling.append(slot)
        for slot, n_tokens in prefills:
            self.prefilled_tokens += n_tokens
            slot.cached.extend(slot.pending[:n_tokens])
            del slot.pending[:n_tokens]
            if not slot.pending:
                sampling.extend(self._prompt_done(slot))
        return sampling

    def _prompt_done(self, leader: Slot) -> list[Slot]:
        """The prompt is in the leader's sequence: share it with its followers."""
        ready = [leader] if not leader.channel.cancelled else []
        for follower in leader.followers:
            if not follower.busy or follower.request is not leader.request:
                continue
            self.context.seq_copy(leader.seq_id, follower.seq_id)
            follower.cached = list(leader.cached)
            follower.logits_index = leader.logits_index
            follower.waits_for_prefill = False
            ready.append(follower)
        leader.followers = []
        if not ready or ready[0] is not leader:
            leader.release()  # cancelled while it prefilled for the others
        return ready

    def _emit(self, slot: Slot, token: int) -> None:
        request = slot.request
        assert request is not None
        slot.generated += 1
        slot.channel.put(token)
        if self._is_end(token, request.stop_ids) or slot.generated >= request.budget:
            slot.release()
        else:
            slot.next_token = token

    def _decode_failed(self, status: int, decoding: list[Slot], prefilling: list[Slot]) -> None:
        if status == DECODE_NO_KV_SLOT and prefilling and self._prefill_cap > 1:
            self._prefill_cap = max(self._prefill_cap // 2, 1)  # nothing changed: retry smaller
            for slot in decoding:
                slot.logits_index = -1
            return
        error = EngineError(
            f"llama.cpp failed while generating: llama_decode returned {status}",
            hint="see llama.log in localchat's log folder; a smaller --ctx may help",
        )
        for slot in [*decoding, *prefilling]:
            self.context.seq_remove(slot.seq_id)  # what it holds now is unknown
            slot.cached.clear()
            for follower in slot.followers:
                follower.release(error)
            slot.release(error)


def _pick_leader(free: list[Slot], prompt: list[int]) -> Slot:
    """llama-server's choice: the slot whose cache holds the most of the prompt, when that
    is a real part of it; else the least recently used (an empty one first)."""
    best = max(free, key=lambda slot: common_prefix(slot.cached, prompt))
    if common_prefix(best.cached, prompt) >= max(MIN_PREFIX_SHARE * len(prompt), 2):
        return best
    return min(free, key=lambda slot: slot.last_used)


def _prefills_for_others(slot: Slot) -> bool:
    return bool(slot.pending) and any(f.busy and not f.channel.cancelled for f in slot.followers)
