"""What a quant type costs in quality, from published measurements (``quality_data.toml``).

Quants are ranked by the KL divergence of their token distribution from FP16's, as
llama.cpp's perplexity README measured it on Llama-3-8B; the user sees the perplexity
increase of the same rows.  The rules, each documented here and in the README:

* **Which row.**  Repos that offer an i-quant (``IQ*``) were made with an importance
  matrix (llama.cpp needs one for the low-bit i-quants): their K-quants get the
  imatrix row where one is published ("WT 10m"), else the plain one.  Other repos get
  the plain row ("none") where published, else the imatrix one.
* **Unquantized** (F32, BF16, F16) is the reference: no loss.
* **A type with no published row** gets an *estimate*: its bits per weight (from its
  GGUF header) placed on the size/quality frontier of the published types, KL divergence
  and perplexity interpolated log-linearly between the two neighbours (clamped at the
  ends).  Without a header it cannot be placed and ranks after every known type.
* **Near ties.**  Two quants tie when their KL divergences differ by less than the
  data's own noise: twice their combined uncertainty, or the largest spread between
  rows of one type made with different importance matrices (relative), whichever is
  larger.  The planner gives a tie to the faster plan.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from localchat.gguf.info import GgufInfo

DATA_FILE = "quality_data.toml"
UNQUANTIZED = frozenset({"F32", "BF16", "F16"})
IMATRIX_ROW = "WT 10m"
PLAIN_ROW = "none"
SOURCE_PREFIX = "quality figures:"
CAVEAT_PREFIX = "quality caveat:"


@dataclass(frozen=True)
class Row:
    """One published measurement of a quant type."""

    quant: str
    imatrix: str  # "none", or the Wikitext tokens its importance matrix saw ("WT 10m")
    size_gib: float
    ppl: float
    dppl: float
    kld: float
    kld_se: float


@dataclass(frozen=True)
class QualityLoss:
    """The expected quality loss of one quant against the unquantized model."""

    quant: str
    kld: float
    kld_se: float
    ppl_increase_pct: float
    basis: str  # "measured", "reference" (unquantized) or "estimated" (by bits per weight)
    imatrix: str = ""  # the measured row's importance matrix ("none", "WT 10m")
    large_model_pct: float | None = None  # the same type on Llama-2-70B, for 30B+ models

    def words(self, *, detail: bool = False) -> str:
        """ "+7.5 % perplexity", "~+3.1 % perplexity (estimate)", "no loss (unquantized)";
        ``detail`` names the model it was measured on (and Llama-2-70B's figure if any)."""
        if self.basis == "reference":
            return "no loss (unquantized)"
        text = f"+{_pct(self.ppl_increase_pct)} % perplexity"
        if self.basis == "estimated":
            return f"~{text} (estimate by bits per weight)" if detail else f"~{text}"
        if not detail:
            return text
        where = f"on {load_table().source['model']}"
        if self.large_model_pct is not None:
            where += f", +{_pct(self.large_model_pct)} % on {load_table().large_model}"
        return f"{text} ({where})"

    def to_json(self) -> dict[str, Any]:
        source = load_table().source
        return {
            "kld": self.kld,
            "kld_uncertainty": self.kld_se,
            "ppl_increase_pct": round(self.ppl_increase_pct, 3),
            "basis": self.basis,
            "imatrix": self.imatrix or None,
            "large_model_ppl_increase_pct": self.large_model_pct,
            "reference_model": source["model"],
            "source": source["title"],
        }


@dataclass(frozen=True)
class QualityTable:
    rows: tuple[Row, ...]
    source: Mapping[str, str]
    large_model_pct: Mapping[str, float]
    large_model: str
    large_min_params: float
    model_dependence: Mapping[str, Any]

    @property
    def f16_size_gib(self) -> float:
        return next(r.size_gib for r in self.rows if r.quant == "F16")

    @property
    def base_ppl(self) -> float:
        """FP16's perplexity (every row's ppl − dppl)."""
        f16 = next(r for r in self.rows if r.quant == "F16")
        return f16.ppl - f16.dppl

    @property
    def spread_ratio(self) -> float:
        """The largest relative KLD spread between rows of one type with different
        importance matrices: how much a figure moves for reasons other than the type."""
        spreads = [0.0]
        for quant in {r.quant for r in self.rows}:
            klds = [r.kld for r in self.rows if r.quant == quant and r.imatrix != PLAIN_ROW]
            if len(klds) > 1:
                spreads.append((max(klds) - min(klds)) / min(klds))
        return max(spreads)

    def row(self, quant: str, imatrix: bool) -> Row | None:
        rows = {r.imatrix: r for r in self.rows if r.quant == quant.upper()}
        order = (IMATRIX_ROW, PLAIN_ROW) if imatrix else (PLAIN_ROW, IMATRIX_ROW)
        return next((rows[key] for key in order if key in rows), None)

    def bits_per_weight(self, row: Row) -> float:
        return 16.0 * row.size_gib / self.f16_size_gib


@cache
def load_table() -> QualityTable:
    data = tomllib.loads(files("localchat.planner").joinpath(DATA_FILE).read_text("utf-8"))
    main, large = data["main"], data["large"]
    return QualityTable(
        rows=tuple(Row(**row) for row in main["rows"]),
        source={key: value for key, value in main.items() if isinstance(value, str)},
        large_model_pct=large["ppl_increase_pct"],
        large_model=large["model"],
        large_min_params=float(large["min_params"]),
        model_dependence=data["model_dependence"],
    )


def uses_imatrix(quants: Mapping[str, object] | list[str]) -> bool:
    """A repo offering i-quants was made with an importance matrix."""
    return any(q.upper().startswith("IQ") for q in quants)


def quality_for(quant: str, info: GgufInfo | None = None, *, imatrix: bool) -> QualityLoss | None:
    """The expected loss of ``quant``; None when it is unpublished and has no header."""
    table = load_table()
    if quant.upper() in UNQUANTIZED:
        return QualityLoss(quant, 0.0, 0.0, 0.0, "reference")
    row = table.row(quant, imatrix)
    large = _large_model_pct(table, quant, info)
    if row is not None:
        pct = 100.0 * row.dppl / table.base_ppl
        return QualityLoss(quant, row.kld, row.kld_se, pct, "measured", row.imatrix, large)
    if info is None:
        return None
    return _estimate(table, quant, bits_per_weight(info), imatrix)


def losses_for(quants: Mapping[str, object]) -> dict[str, QualityLoss | None]:
    """Each quant's expected loss; values that are a ``GgufInfo`` place unpublished types."""
    imatrix = uses_imatrix(quants)
    return {q: quality_for(q, _info(value), imatrix=imatrix) for q, value in quants.items()}


def quality_order(quants: Mapping[str, object]) -> list[str]:
    """Best quality first (lowest KL divergence); quants that cannot be placed last."""
    imatrix = uses_imatrix(quants)

    def key(quant: str) -> tuple[bool, float, str]:
        loss = quality_for(quant, _info(quants[quant]), imatrix=imatrix)
        return (loss is None, loss.kld if loss is not None else 0.0, quant)

    return sorted(quants, key=key)


def _info(value: object) -> GgufInfo | None:
    return value if isinstance(value, GgufInfo) else None


def near_tie(a: QualityLoss, b: QualityLoss) -> bool:
    """Whether two losses are the same within the data's noise (see the module doc)."""
    noise = max(2.0 * math.hypot(a.kld_se, b.kld_se), load_table().spread_ratio * max(a.kld, b.kld))
    return abs(a.kld - b.kld) <= noise


def approx_params(info: GgufInfo) -> float:
    """Weights of the matrices, from the header's shapes (norms and biases left out)."""
    embedding = info.n_vocab * info.n_embd * (1 if info.output_tied else 2)
    layers = 0
    for il in range(info.n_layers):
        attention = info.n_embd * info.head_dim_k * 2 * (info.n_head[il] + info.n_head_kv[il])
        experts = max(info.n_expert, 1)
        layers += attention + 3 * info.n_embd * info.n_ff * experts + info.n_embd * info.n_expert
    return float(embedding + layers)


def bits_per_weight(info: GgufInfo) -> float:
    return 8.0 * info.weights_bytes / max(approx_params(info), 1.0)


def _estimate(table: QualityTable, quant: str, bpw: float, imatrix: bool) -> QualityLoss:
    points = _frontier(table, imatrix)
    lo = max((p for p in points if p[0] <= bpw), default=points[0], key=lambda p: p[0])
    hi = min((p for p in points if p[0] >= bpw), default=points[-1], key=lambda p: p[0])
    share = 0.0 if hi[0] == lo[0] else (bpw - lo[0]) / (hi[0] - lo[0])

    def between(a: float, b: float) -> float:
        return math.exp(math.log(a) + share * (math.log(b) - math.log(a)))

    kld = between(lo[1].kld, hi[1].kld)
    pct = between(lo[1].dppl, hi[1].dppl) * 100.0 / table.base_ppl
    return QualityLoss(quant, kld, 0.0, pct, "estimated")


def _frontier(table: QualityTable, imatrix: bool) -> list[tuple[float, Row]]:
    """(bits per weight, row) of the published types no smaller type beats, by size."""
    quants = sorted({r.quant for r in table.rows} - UNQUANTIZED)
    rows = [row for q in quants if (row := table.row(q, imatrix)) is not None]
    points = sorted(((table.bits_per_weight(r), r) for r in rows), key=lambda p: (p[0], p[1].kld))
    frontier: list[tuple[float, Row]] = []
    for bpw, row in points:
        if not frontier or row.kld < frontier[-1][1].kld:
            frontier.append((bpw, row))
    return frontier


def _large_model_pct(table: QualityTable, quant: str, info: GgufInfo | None) -> float | None:
    if info is None or approx_params(info) < table.large_min_params:
        return None
    return table.large_model_pct.get(quant.upper())


def source_line() -> str:
    """Where the figures come from and what counts as a tie, for the plan's reasons."""
    table = load_table()
    source = table.source
    return (
        f"{SOURCE_PREFIX} perplexity increase over F16 measured on {source['model']} "
        f"({source['short']}); quants ranked by KL divergence, differences under "
        f"{100 * table.spread_ratio:.1f} % count as a tie and go to the faster plan"
    )


def caveat_line(info: GgufInfo) -> str:
    """How far the figures carry to this model: model dependence, and MoE."""
    dependence = load_table().model_dependence
    small, large = dependence["kld"]["Q4_K_M"]
    first, second = dependence["models"]
    text = (
        f"{CAVEAT_PREFIX} loss depends on the model (Q4_K_M: KL divergence {small:.4f} on "
        f"{first}, {large:.4f} on {second}); read the figures as a ranking of types"
    )
    if info.is_moe:
        text += "; no mixture-of-experts model was measured, the dense ranking is assumed"
    return text


def _pct(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"
