"""What the decode thread and the streams' consumers share: requests, slots, token channels.

A ``Request`` is one prompt and its ``n`` choices; each choice is decoded in a
``Slot`` (one llama.cpp sequence) and its tokens travel to the consumer's thread
through a ``TokenChannel``.  A consumer that closes its stream cancels the channel;
the decode thread frees the slot at its next step.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from localchat.errors import LocalchatError
from localchat.llamacpp.sampler import Sampler

MAX_AHEAD_TOKENS = 64  # tokens a slot decodes ahead of a slow consumer before it pauses


class TokenChannel:
    """Token ids from the decode thread to one consumer; its cancel back."""

    def __init__(self, wake_decoder: Callable[[], None]) -> None:
        self._wake_decoder = wake_decoder
        self._tokens: deque[tuple[int, float]] = deque()  # (token, perf_counter when made)
        self.produced_at = 0.0  # when the token ``tokens()`` yielded last was made
        self._ready = threading.Condition()
        self._finished = False
        self._error: LocalchatError | None = None
        self.cancelled = False

    # -- the decode thread's side ------------------------------------------

    def put(self, token: int) -> None:
        with self._ready:
            self._tokens.append((token, time.perf_counter()))
            self._ready.notify()

    def finish(self, error: LocalchatError | None = None) -> None:
        with self._ready:
            self._finished = True
            self._error = error
            self._ready.notify_all()

    @property
    def backlog(self) -> int:
        return len(self._tokens)

    # -- the consumer's side -----------------------------------------------

    def tokens(self) -> Iterator[int]:
        """The tokens as they are decoded; raises the decode thread's error, if any."""
        while True:
            with self._ready:
                while not self._tokens and not self._finished:
                    self._ready.wait()
                if self._tokens:
                    token, self.produced_at = self._tokens.popleft()
                    resume = len(self._tokens) == MAX_AHEAD_TOKENS // 2
                elif self._error is not None:
                    raise self._error
                else:
                    return
            if resume:
                self._wake_decoder()  # a paused slot can go on
            yield token

    def cancel(self) -> None:
        """The consumer is done with it (closed early, or finished reading)."""
        if not self.cancelled:
            self.cancelled = True
            self._wake_decoder()


@dataclass
class Request:
    """A tokenized prompt to continue ``len(channels)`` times (one sampler each)."""

    prompt: list[int]
    samplers: list[Sampler]
    channels: list[TokenChannel]
    budget: int  # most tokens each choice generates
    stop_ids: frozenset[int]
    arrived_at: float = field(default_factory=time.monotonic)

    @property
    def n_choices(self) -> int:
        return len(self.channels)

    def abandoned(self) -> bool:
        return all(channel.cancelled for channel in self.channels)

    def close(self, error: LocalchatError | None = None) -> None:
        """Finish every channel and free the samplers (a request never admitted)."""
        for channel in self.channels:
            channel.finish(error)
        for sampler in self.samplers:
            sampler.close()


@dataclass
class Slot:
    """One llama.cpp sequence: what its KV cache holds, and the choice it decodes."""

    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens in the cache, positions 0..
    request: Request | None = None
    choice: int = 0
    pending: list[int] = field(default_factory=list)  # prompt tokens still to decode
    next_token: int | None = None  # sampled, decoded at the next step
    generated: int = 0
    logits_index: int = -1  # where this step's logits for it are in the batch
    followers: list[Slot] = field(default_factory=list)  # choices waiting for this prefill
    waits_for_prefill: bool = False  # a follower until its leader's prompt is decoded
    last_used: float = 0.0

    @property
    def busy(self) -> bool:
        return self.request is not None

    @property
    def channel(self) -> TokenChannel:
        assert self.request is not None
        return self.request.channels[self.choice]

    @property
    def sampler(self) -> Sampler:
        assert self.request is not None
        return self.request.samplers[self.choice]

    def start(self, request: Request, choice: int, kept: int) -> None:
        """Take ``request``'s choice, keeping the first ``kept`` cached tokens."""
        self.request, self.choice = request, choice
        del self.cached[kept:]
        self.pending = request.prompt[kept:] if choice == 0 else []
        self.next_token, self.generated, self.logits_index = None, 0, -1
        self.followers, self.waits_for_prefill = [], choice > 0
        self.last_used = time.monotonic()

    def release(self, error: LocalchatError | None = None) -> None:
        """Done with its choice: finish the channel, free the sampler; the cache stays."""
        if self.request is not None:
            self.channel.finish(error)
            self.sampler.close()
        self.request, self.pending, self.next_token = None, [], None
        self.followers, self.waits_for_prefill = [], False
        self.last_used = time.monotonic()

    def wants_decode(self) -> bool:
        return self.next_token is not None and self.channel.backlog < MAX_AHEAD_TOKENS


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit
