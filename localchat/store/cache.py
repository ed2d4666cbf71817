"""Look up catalog/hub models in the Hugging Face cache (blobs + snapshots), offline."""

from __future__ import annotations

from pathlib import Path

from localchat.paths import hf_cache_dir
from localchat.reference import ModelRef
from localchat.store.local import LocalModel
from localchat.store.quants import quality_rank


def find_in_hf_cache(ref: ModelRef) -> LocalModel | None:
    entry = ref.entry
    if entry is None or entry.gguf is None:
        return None  # hub refs outside the catalog: the hub package resolves them
    source = entry.gguf
    quants = (
        [source.quant(ref.quant)]
        if ref.quant
        else sorted(source.quants.values(), key=lambda q: quality_rank(q.quant))
    )
    for quant in quants:
        if quant is None:
            continue
        paths = [_cached_file(source.repo, name, source.revision) for name in quant.files]
        if all(p is not None for p in paths):
            files = tuple(p for p in paths if p is not None)
            return LocalModel(
                name=entry.name,
                path=files[0],
                files=files,
                quant=quant.quant,
                repo_id=source.repo,
                revision=source.revision,
            )
    return None


def _cached_file(repo_id: str, filename: str, revision: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) else None
