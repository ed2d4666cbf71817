"""A search result's verdict for this machine, in words and as data.

From a plan: the quant the planner chose, where it runs, the context, the predicted
decode speed (measured when ``localchat bench`` has run) and the expected quality loss;
or "does not fit: needs X GiB".  From an error: gated (and how to log in), nothing
localchat runs, refused (a hostile or broken answer), the hub failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localchat.errors import LocalchatError
from localchat.hub.client import LOGIN_HINT, repo_page
from localchat.planner import Plan

GIB = 1 << 30
STATUSES = (
    "fits", "does not fit", "gated", "nothing to run", "refused", "hub failed", "failed",
    "timed out", "cancelled",
)  # fmt: skip
_SHORT = {
    "gated": "gated: log in",
    "nothing to run": "no GGUF/AWQ files",
    "refused": "refused",
    "hub failed": "hub error",
    "failed": "failed",
    "timed out": "timed out",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Verdict:
    status: str  # one of STATUSES
    plan: Plan | None = None
    message: str = ""  # why, for a verdict without a plan that fits

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}")

    @property
    def fits(self) -> bool:
        return self.plan is not None and self.plan.fits

    @property
    def quant(self) -> str | None:
        return self.plan.quant if self.plan is not None else None

    @property
    def tok_s(self) -> float | None:
        return self.plan.predicted_tok_s if self.plan is not None and self.plan.fits else None

    @property
    def kld(self) -> float | None:
        quality = self.plan.quality if self.plan is not None else None
        return quality.kld if quality is not None else None

    @property
    def measured(self) -> bool:
        speed = self.plan.speed if self.plan is not None else None
        return speed is not None and str(speed.source).startswith("measured")

    @property
    def summary(self) -> str:
        """One line: ``Q4_K_M · all on GPU · ctx 8192 · 41 tok/s · +3.1 % perplexity``."""
        plan = self.plan
        if plan is None:
            return f"{self.status}: {self.message}" if self.message else self.status
        if not plan.fits:
            return self.message
        measured = " (measured)" if self.measured else ""
        parts = [
            str(plan.quant),
            placement(plan),
            f"ctx {plan.n_ctx}",
            f"{speed_text(plan.predicted_tok_s)} tok/s{measured}",
        ]
        if plan.quality is not None:
            parts.append(plan.quality.words())
        return " · ".join(parts)

    @property
    def short(self) -> str:
        """At most 22 characters, for the app's verdict column."""
        plan = self.plan
        if plan is None:
            return _SHORT.get(self.status, self.status)
        if not plan.fits:
            return f"no fit: {needed_bytes(plan) / GIB:.0f} GiB"
        where = "GPU" if plan.full_offload else "CPU" if plan.n_gpu_layers <= 0 else "part"
        return f"{plan.quant} {where} {speed_text(plan.predicted_tok_s)} t/s"[:22]

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        body: dict[str, Any] = {
            "status": self.status,
            "fits": self.fits,
            "summary": self.summary,
            "message": self.message or None,
        }
        if plan is not None:
            body.update(
                quant=plan.quant,
                n_gpu_layers=plan.n_gpu_layers,
                n_layers=plan.n_layers,
                n_ctx=plan.n_ctx,
                predicted_tok_s=round(plan.predicted_tok_s, 2),
                speed_source=plan.speed.source if plan.speed is not None else None,
                quality=plan.quality.to_json() if plan.quality is not None else None,
                needs_bytes=needed_bytes(plan),
                budget_bytes=sum(plan.budgets_bytes.values()),
                plan=plan.to_json(),
            )
        return body


def placement(plan: Plan) -> str:
    """Where the layers go: "all on GPU", "CPU", "20/33 on GPU", MoE experts in RAM."""
    if plan.n_gpu_layers <= 0:
        return "CPU"
    if plan.full_offload:
        return "all on GPU"
    if plan.n_cpu_moe:
        return f"{plan.gpu_layers_text} on GPU, experts of {plan.n_cpu_moe} layers in RAM"
    return f"{plan.gpu_layers_text} on GPU"


def speed_text(tok_s: float) -> str:
    return f"{tok_s:.1f}" if tok_s < 10 else f"{tok_s:.0f}"


def needed_bytes(plan: Plan) -> int:
    """What the planner's least bad option must keep in memory, all devices together."""
    return sum(device.resident_bytes for device in plan.devices)


def verdict_from_plan(plan: Plan) -> Verdict:
    if plan.fits:
        return Verdict("fits", plan)
    need, have = needed_bytes(plan), sum(plan.budgets_bytes.values())
    return Verdict(
        "does not fit",
        plan,
        f"does not fit: needs {need / GIB:.1f} GiB ({plan.quant}), "
        f"this machine has {have / GIB:.1f} GiB",
    )


def verdict_from_error(kind: str, error: LocalchatError, repo_id: str) -> Verdict:
    """``kind`` from ``search_facts.error_kind``; a gated repo says how to log in."""
    if kind == "gated":
        return Verdict(kind, message=f"accept its terms at {repo_page(repo_id)}, then {LOGIN_HINT}")
    if kind == "refused":  # the hint is always "check HF_ENDPOINT"
        return Verdict(kind, message=error.message.removesuffix("; refused"))
    return Verdict(kind, message=error.one_line())
