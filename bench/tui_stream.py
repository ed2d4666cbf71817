"""How fast the chat view keeps up with a fast model, and how the keyboard feels meanwhile.

A scripted model streams 4,000 tokens of Markdown at 1,000 tok/s into the chat screen of a
headless app (Textual's test driver, 120x40).  While it streams, a thread presses a key every
50 ms and times how long the prompt takes to show it.

Reports: the stream's own duration (first to last token), the time until the view shows the
whole reply and until its final render is done, their ratio to the stream (target <= 1.2x),
and key-press latencies (median, p95, worst).  Prints a table, writes
bench/results/tui_stream.json.  Never asserts a time.  Three runs by default (``--runs``).

    python bench/tui_stream.py [--tokens 4000] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events

from localchat.history import HistoryStore
from localchat.settings import Settings
from localchat.tui.app import LocalchatApp
from localchat.tui.fake import ScriptedModel, split_tokens
from localchat.tui.widgets.message import MessageView
from localchat.tui.widgets.prompt import PromptInput
from localchat.types import Message, SamplingParams, TextStream

RESULTS = Path(__file__).resolve().parent / "results" / "tui_stream.json"

PARAGRAPH = (
    "Quantization trades a little accuracy for a lot of memory: a **Q4_K_M** file keeps "
    "most weights in four bits, with `scales` per block, so a model that needs 16 GB in "
    "half precision fits in about 5 GB. "
)
CODE = "```python\nfor layer in model.layers:\n    offload(layer, device='cuda:0')\n```\n\n"
BULLETS = "- first point about context\n- second point about `n_gpu_layers`\n\n"


def markdown_tokens(count: int) -> list[str]:
    """``count`` word-sized tokens of mixed Markdown: paragraphs, code blocks, lists."""
    tokens: list[str] = []
    section = 0
    while len(tokens) < count:
        block = [PARAGRAPH * 3 + "\n\n", CODE, BULLETS][section % 3]
        if section % 5 == 4:
            block = f"## Part {section // 5 + 1}\n\n"
        tokens += split_tokens(block)
        section += 1
    return tokens[:count]


class TimedModel(ScriptedModel):
    """Records when the first and last tokens left the model."""

    first_at: float | None = None
    last_at: float | None = None

    def stream_chat(
        self, messages: Sequence[Message], sampling: SamplingParams | None = None
    ) -> TextStream:
        stream = super().stream_chat(messages, sampling)
        return TextStream(self._timed(stream), stream.stats)

    def _timed(self, stream: TextStream) -> Iterator[str]:
        try:
            for piece in stream:
                now = time.perf_counter()
                if self.first_at is None:
                    self.first_at = now
                self.last_at = now
                yield piece
        finally:
            stream.close()


class KeyProbe(threading.Thread):
    """Presses "x" every ``interval_s`` and times until the prompt shows it."""

    def __init__(self, app: LocalchatApp, prompt: PromptInput, interval_s: float = 0.05):
        super().__init__(daemon=True)
        self.app = app
        self.prompt = prompt
        self.interval_s = interval_s
        self.latencies_s: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            before = len(self.prompt.text)
            pressed = time.perf_counter()
            self.app.post_message(events.Key("x", "x"))
            while len(self.prompt.text) == before:
                if time.perf_counter() - pressed > 5.0:
                    break
                time.sleep(0.0005)
            self.latencies_s.append(time.perf_counter() - pressed)
            self.stop.wait(self.interval_s)


async def measure(tokens: int, rate: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="tui-bench-"))
    model = TimedModel("bench-model", tokens=markdown_tokens(tokens), tokens_per_s=rate)
    app = LocalchatApp(
        model="bench-model",
        loader=lambda *a, **k: model,
        store=HistoryStore(folder / "history.sqlite3"),
        settings=Settings(),
        settings_path=folder / "settings.toml",
    )
    full_text = "".join(model.tokens or [])
    async with app.run_test(size=(120, 40)) as pilot:
        while app.model is None:
            await pilot.pause(0.01)
        prompt = app.screen.query_one(PromptInput)
        prompt.text = "Explain quantization at length."
        await pilot.press("enter")
        probe = KeyProbe(app, prompt)
        while model.first_at is None:
            await asyncio.sleep(0.001)
        probe.start()
        view = None
        caught_up_at = None
        while True:
            views = list(app.screen.query(MessageView))
            view = views[-1] if len(views) > 1 else None
            if view is not None and caught_up_at is None and len(view.raw_text) >= len(full_text):
                caught_up_at = time.perf_counter()
            if view is not None and not app.chat.generating and not view.has_class("streaming"):
                break
            await asyncio.sleep(0.005)
        rendered_at = time.perf_counter()
        probe.stop.set()
        await asyncio.to_thread(probe.join)
        assert model.first_at is not None and model.last_at is not None
        stream_s = model.last_at - model.first_at
        shown_s = (caught_up_at or rendered_at) - model.first_at
        rendered_s = rendered_at - model.first_at
        latencies = sorted(probe.latencies_s)
        return {
            "tokens": tokens,
            "rate_tok_s": rate,
            "stream_s": round(stream_s, 3),
            "view_caught_up_s": round(shown_s, 3),
            "view_final_render_s": round(rendered_s, 3),
            "ratio_caught_up": round(shown_s / stream_s, 3),
            "ratio_final_render": round(rendered_s / stream_s, 3),
            "key_presses": len(latencies),
            "key_latency_median_ms": round(statistics.median(latencies) * 1000, 1),
            "key_latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
            "key_latency_worst_ms": round(latencies[-1] * 1000, 1),
            "reply_chars": len(full_text),
            "text_complete": view is not None and view.raw_text == full_text,
        }


def machine() -> dict[str, Any]:
    import textual

    return {
        "python": platform.python_version(),
        "textual": textual.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "driver": "headless (App.run_test)",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "ratio_final_render_median": statistics.median(r["ratio_final_render"] for r in runs),
        "ratio_final_render_worst": max(r["ratio_final_render"] for r in runs),
        "key_latency_median_ms": statistics.median(r["key_latency_median_ms"] for r in runs),
        "key_latency_worst_ms": max(r["key_latency_worst_ms"] for r in runs),
        "all_text_complete": all(r["text_complete"] for r in runs),
    }


def print_table(runs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    header = (
        f"{'run':>3}  {'stream s':>8}  {'shown s':>7}  {'final s':>7}  {'ratio':>5}"
        f"  {'keys':>4}  {'key p50 ms':>10}  {'key p95 ms':>10}  {'key max ms':>10}"
    )
    print(header)
    for i, r in enumerate(runs, 1):
        print(
            f"{i:>3}  {r['stream_s']:>8.2f}  {r['view_caught_up_s']:>7.2f}"
            f"  {r['view_final_render_s']:>7.2f}  {r['ratio_final_render']:>5.2f}"
            f"  {r['key_presses']:>4}  {r['key_latency_median_ms']:>10.1f}"
            f"  {r['key_latency_p95_ms']:>10.1f}  {r['key_latency_worst_ms']:>10.1f}"
        )
    print(
        f"view done / stream: median {summary['ratio_final_render_median']:.2f}x,"
        f" worst {summary['ratio_final_render_worst']:.2f}x (target <= 1.2x);"
        f" worst key press {summary['key_latency_worst_ms']:.0f} ms;"
        f" text complete: {summary['all_text_complete']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCALCHAT_HOME", tempfile.mkdtemp(prefix="tui-bench-home-"))
    runs = [asyncio.run(measure(args.tokens, args.rate)) for _ in range(args.runs)]
    summary = summarize(runs)
    print(f"{args.tokens} tokens at {args.rate:.0f} tok/s into the chat view, headless 120x40")
    print_table(runs, summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {"summary": summary, "runs": runs, "machine": machine()}
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
