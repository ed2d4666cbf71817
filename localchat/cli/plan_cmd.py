"""``localchat plan MODEL``: which quant, GPU layers and context fit, and why.

Works before anything is downloaded (remote headers by HTTP Range, or the
catalog's recorded figures offline), and for hardware you don't have
(``--vram 24GiB`` repeatable, ``--ram``, ``--apple``, ``--cpu-only``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from localchat import services
from localchat.cli.options import threads_option
from localchat.cli.slots_option import SlotCount
from localchat.cli.what_if import what_if, what_if_options

if TYPE_CHECKING:
    from localchat.services import Plan

GIB = 1 << 30


@click.command("plan")
@click.argument("model")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=256), help="Context size (default: auto).")
@click.option("--quant", help="Plan this quant only (default: choose).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--type-k", default="f16", show_default=True, help="K cache type: f16, q8_0, q4_0.")
@click.option(
    "--type-v",
    default="f16",
    show_default=True,
    help="V cache type (quantized needs flash attention).",
)
@click.option(
    "--target-tok-s",
    type=float,
    default=10.0,
    show_default=True,
    help="Decode speed the chosen quant should reach.",
)
@click.option(
    "--offline", is_flag=True, help="Don't read remote headers; use models.toml's figures."
)
@click.option(
    "--ngl",
    "n_gpu_layers",
    type=click.IntRange(min=0),
    help="Cost this many GPU layers (n_layers + 1 = all) instead of choosing.",
)
@click.option(
    "--parallel",
    "n_parallel",
    type=SlotCount(),
    default=1,
    show_default=True,
    help="Sequences served at once (`serve`'s slots), each with --ctx of context; "
    "auto: as many as pay off (what `serve` chooses).",
)
@click.option(
    "--cpu-moe",
    "n_cpu_moe",
    type=click.IntRange(min=0),
    help="MoE: keep the experts of the first N layers in RAM (default: choose).",
)
@click.option(
    "--prompt-tokens",
    "n_prompt",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Prompt length the predicted time to first token is for.",
)
@threads_option
@what_if_options
def plan(
    model: str,
    n_ctx: int | None,
    quant: str | None,
    as_json: bool,
    vram: tuple[str, ...],
    ram: str | None,
    apple: str | None,
    cpu_only: bool,
    type_k: str,
    type_v: str,
    target_tok_s: float,
    offline: bool,
    n_gpu_layers: int | None,
    n_parallel: int | str,
    n_cpu_moe: int | None,
    n_prompt: int,
    n_threads: int | None,
    remote: tuple[str, ...],
    rpc: str | None,
    link: str | None,
) -> None:
    """Show what fits this machine (or a what-if one) for MODEL, and why."""
    hardware = services.plan_hardware(what_if(vram, ram, apple, cpu_only, remote, rpc, link))
    request = services.PlanRequest(
        n_ctx=n_ctx,
        quant=quant,
        type_k=type_k.lower(),
        type_v=type_v.lower(),
        target_tok_s=target_tok_s,
        n_gpu_layers=n_gpu_layers,
        n_parallel=n_parallel if isinstance(n_parallel, int) else 1,
        parallel_auto=n_parallel == "auto",
        n_cpu_moe=n_cpu_moe,
        n_prompt=n_prompt,
        n_threads=n_threads if n_threads is not None else services.settings_threads(),
    )
    result = services.plan_model(model, hardware, request, offline=offline)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo("\n".join(format_plan(result)))
    result.raise_if_not_fits(suggest_plan=False)


def _gib(n_bytes: int | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / GIB:.2f}"


def format_plan(plan: Plan) -> list[str]:
    """The human-readable plan: a summary line, a per-device table, the reasons."""
    layers = f"{plan.gpu_layers_text} layers on GPU"
    status = "" if plan.fits else "  (DOES NOT FIT)"
    lines = [
        f"{plan.model}: {plan.quant} · {layers} · context {plan.n_ctx} · "
        f"KV {plan.type_k}/{plan.type_v} · flash attention {'on' if plan.flash_attn else 'off'}"
        f" · predicted {plan.predicted_tok_s:.1f} tok/s{status}",
        f"numbers from: {plan.source}",
        *_speed_lines(plan),
        "",
        f"{'device':<8}{'weights':>9}{'KV':>9}{'compute':>9}{'reserve':>9}{'total':>9}{'budget':>9}"
        "  holds (sizes in GiB)",
    ]
    for device in plan.devices:
        lines.append(
            f"{device.device:<8}{_gib(device.weights_bytes):>9}{_gib(device.kv_bytes):>9}"
            f"{_gib(device.compute_bytes):>9}{_gib(device.reserve_bytes):>9}"
            f"{_gib(device.total_bytes):>9}{_gib(plan.budgets_bytes.get(device.device)):>9}"
            f"  {plan.device_layers.get(device.device, '')}"
        )
    lines.append("")
    lines.extend(_quant_table(plan))
    lines.extend(f"- {reason}" for reason in plan.reasons)
    return lines


def _quant_table(plan: Plan) -> list[str]:
    """Every quant considered: size, placement, speed and expected quality loss; * = chosen."""
    if plan.quality is None and not plan.alternatives:
        return []  # AWQ, or no quality figures: the reasons say it all
    rows = plan.quant_rows()
    reference = next((r["quality"]["reference_model"] for r in rows if r["quality"]), "")
    lines = [
        f"  {'quant':<8}{'size':>8}  {'on GPU':<21}{'context':>7}{'tok/s':>7}  "
        f"loss vs F16, {reference}"
    ]
    for row in rows:
        mark = "*" if row["chosen"] else " "
        lines.append(
            f"{mark} {row['quant']:<8}{row['weights'] / 1e9:>5.1f} GB  "
            f"{_placement(row, plan.n_layers):<21}{row['n_ctx']:>7}"
            f"{row['predicted_tok_s']:>7.1f}  {_quality_text(row)}"
        )
    return [*lines, ""]


def _placement(row: dict[str, Any], n_layers: int) -> str:
    if not row["fits"]:
        return "does not fit"
    layers = f"{row['n_gpu_layers']}/{n_layers + 1}"
    return f"{layers}, {row['n_cpu_moe']} exp. in RAM" if row["n_cpu_moe"] else layers


def _quality_text(row: dict[str, Any]) -> str:
    quality = row["quality"]
    if quality is None:
        return "unknown"
    if quality["basis"] == "reference":
        return "none (unquantized)"
    approx = "~" if quality["basis"] == "estimated" else ""
    pct = quality["ppl_increase_pct"]
    return f"{approx}+{pct:.{2 if pct < 1 else 1}f} % ppl, KLD {quality['kld']:.4f}"


def _speed_lines(plan: Plan) -> list[str]:
    speed = plan.speed
    if speed is None:
        return []
    return [
        f"speed ({speed.source}): prefill {speed.prefill_tok_s:.0f} tok/s, decode "
        f"{speed.decode_tok_s:.1f} tok/s; time to first token "
        f"{speed.ttft_s(speed.n_prompt):.2f} s for {speed.n_prompt} prompt tokens",
        f"threads: {plan.n_threads} decode, {plan.n_threads_batch} prompt ({plan.threads_source})",
    ]
