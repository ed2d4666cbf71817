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


# Any quant-looking token, for names KNOWN_QUANTS does not cover (UD-Q4_K_XL, Q4_K_L...).
_ANY_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q\d(?:_[A-Za-z0-9]+)*|BF16|F16|F32|FP16|FP32|MXFP4(?:_MOE)?))"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def quant_in_stem(stem: str) -> str | None:
    """The quant named in a file stem (the last quant-looking token), upper-cased."""
    matches = _ANY_QUANT_RE.findall(stem)
    return matches[-1].upper() if matches else None


SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
PARTS_RE = re.compile(r"^(?P<joined>.+\.gguf)\.part(?P<no>\d+)of(?P<count>\d+)$", re.IGNORECASE)
_NOT_MODEL_RE = re.compile(r"mmproj|imatrix|vocab-only", re.IGNORECASE)


def classify_gguf_path(path: str) -> tuple[str, str, int, int] | None:
    """``(stem, layout, number, count)`` for a GGUF path in a repo, or None if not a model file.

    layout is "single", "split" (llama.cpp ``-0000N-of-0000M``) or "parts" (``.partXofY``);
    the stem keeps the folder, so files of one quant share it.
    """
    directory, _, name = path.rpartition("/")
    if _NOT_MODEL_RE.search(name):
        return None
    prefix = f"{directory}/" if directory else ""
    if match := PARTS_RE.match(name):
        stem = prefix + match.group("joined")[: -len(".gguf")]
        return stem, "parts", int(match.group("no")), int(match.group("count"))
    if match := SPLIT_RE.match(name):
        return (
            prefix + match.group("stem"),
            "split",
            int(match.group("no")),
            int(match.group("count")),
        )
    if name.lower().endswith(".gguf"):
        return prefix + name[: -len(".gguf")], "single", 1, 1
    return None
