"""Quantization names as they appear in GGUF file names."""

from __future__ import annotations

import re

# Best quality first.  Used to order choices and to spot the quant in a file name.
KNOWN_QUANTS: tuple[str, ...] = (
    "F32", "BF16", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0",
    "Q4_K_M", "Q4_K_S", "IQ4_XS", "IQ4_NL", "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M",
    "IQ3_M", "IQ3_S", "Q3_K_S", "IQ3_XS", "IQ3_XXS", "Q2_K", "Q2_K_S", "IQ2_M",
    "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S",
)  # fmt: skip

_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])("
    + "|".join(sorted(KNOWN_QUANTS, key=len, reverse=True))
    + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def quant_in_filename(filename: str) -> str | None:
    match = _QUANT_RE.search(filename)
    return match.group(1).upper() if match else None


def quality_rank(quant: str) -> int:
    """Lower is better; unknown quants sort last."""
    try:
        return KNOWN_QUANTS.index(quant.upper())
    except ValueError:
        return len(KNOWN_QUANTS)
