"""``localchat plan MODEL``: which quant, GPU layers and context fit, and why.

Works before anything is downloaded (remote headers by HTTP Range, or the
catalog's recorded figures offline), and for hardware you don't have
(``--vram 24GiB`` repeatable, ``--ram``, ``--apple``, ``--cpu-only``).
"""

from __future__ import annotations

import json

import click

GIB = 1 << 30


@click.command("plan")
@click.argument("model")
@click.option("--ctx", "n_ctx", type=click.IntRange(min=256), help="Context size (default: auto).")
@click.option("--quant", help="Plan this quant only (default: choose).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--vram",
    multiple=True,
    metavar="SIZE",
    help="What-if GPU memory, e.g. 24GiB; repeat for several GPUs.",
)
@click.option("--ram", metavar="SIZE", help="What-if RAM, e.g. 64GiB.")
@click.option("--apple", metavar="SIZE", help="What-if Apple Silicon Mac with this much RAM.")
@click.option("--cpu-only", is_flag=True, help="Plan without any GPU.")
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
) -> None:
    """Show what fits this machine (or a what-if one) for MODEL, and why."""
    from localchat.catalog import load_catalog
    from localchat.planner import PlanRequest, plan_reference
    from localchat.reference import parse_model_ref

    hardware = _hardware(vram, ram, apple, cpu_only)
    request = PlanRequest(
        n_ctx=n_ctx,
        quant=quant,
        type_k=type_k.lower(),
        type_v=type_v.lower(),
        target_tok_s=target_tok_s,
    )
    ref = parse_model_ref(model, load_catalog())
    result = plan_reference(ref, hardware, request, offline=offline)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo("\n".join(format_plan(result)))
    result.raise_if_not_fits()


def _hardware(vram: tuple[str, ...], ram: str | None, apple: str | None, cpu_only: bool):
    from localchat.planner.profiles import what_if_hardware

    if vram or apple:
        return what_if_hardware(None, vram=vram, ram=ram, apple=apple, cpu_only=cpu_only)
    from localchat.hardware import detect_hardware

    base = detect_hardware()
    if ram or cpu_only:
        return what_if_hardware(base, ram=ram, cpu_only=cpu_only)
    return base


def _gib(n_bytes: int | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / GIB:.2f}"


def format_plan(plan) -> list[str]:
    """The human-readable plan: a summary line, a per-device table, the reasons."""
    layers = f"{plan.n_gpu_layers}/{plan.n_layers + 1} layers on GPU"
    status = "" if plan.fits else "  (DOES NOT FIT)"
    lines = [
        f"{plan.model}: {plan.quant} · {layers} · context {plan.n_ctx} · "
        f"KV {plan.type_k}/{plan.type_v} · flash attention {'on' if plan.flash_attn else 'off'}"
        f" · predicted {plan.predicted_tok_s:.1f} tok/s{status}",
        f"numbers from: {plan.source}",
        "",
        f"{'device':<8}{'weights':>9}{'KV':>9}{'compute':>9}{'reserve':>9}{'total':>9}{'budget':>9}"
        "  (GiB)",
    ]
    for device in plan.devices:
        lines.append(
            f"{device.device:<8}{_gib(device.weights_bytes):>9}{_gib(device.kv_bytes):>9}"
            f"{_gib(device.compute_bytes):>9}{_gib(device.reserve_bytes):>9}"
            f"{_gib(device.total_bytes):>9}{_gib(plan.budgets_bytes.get(device.device)):>9}"
        )
    lines.append("")
    lines.extend(f"- {reason}" for reason in plan.reasons)
    return lines
