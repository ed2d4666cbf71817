"""AWQ checkpoints on transformers + GPTQModel, registered as a format (``engine.registry``).

An AWQ model is a folder: safetensors shards, ``config.json`` (its quantization_config
says ``awq``) and the tokenizer's files.  It is planned whole on one device
(``planner.awq``) and loaded by ``engine.awq.backend`` with ``AwqSettings``; torch is
imported only then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from localchat.catalog import AWQ_QUANT, CatalogEntry
from localchat.engine.base import LoadSettings
from localchat.engine.registry import ChooseQuant, ModelFacts, Registry
from localchat.engine.settings import AwqSettings
from localchat.hardware.types import Hardware
from localchat.hub import Listing, RemoteFile, Selection
from localchat.planner import Plan, PlanRequest
from localchat.planner.awq import ArchFromConfig, AwqFigures, AwqPlan, plan_awq, require_awq
from localchat.safetensors import read_checkpoint
from localchat.safetensors.metadata import hf_metadata
from localchat.store import FileGroup, LocalModel

BACKEND = "localchat.engine.awq.backend:AwqBackend"
CONFIG_FILE = "config.json"
# Besides the shards: what transformers reads to build the model and its tokenizer.
EXTRA_FILES = frozenset(
    {
        CONFIG_FILE,
        "generation_config.json",
        "quant_config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
        "chat_template.jinja",
        "chat_template.json",
    }
)


class AwqFormat:
    """A folder of safetensors shards with an AWQ ``quantization_config``."""

    name = "awq"
    files_hint = "an AWQ checkpoint folder"

    def owns_quant(self, quant: str) -> bool:
        return quant.upper() == AWQ_QUANT

    def catalog_repo(self, entry: CatalogEntry) -> tuple[str, str] | None:
        return (entry.awq.repo, entry.awq.revision) if entry.awq is not None else None

    def catalog_files(self, entry: CatalogEntry, quant: str | None) -> Sequence[FileGroup]:
        return ()  # models.toml lists no AWQ files: only what localchat pulled is found

    def snapshot_models(self, snapshot: Path) -> Sequence[FileGroup]:
        return ()  # another tool's checkpoint download is not told apart from a model repo

    def local_model(self, path: Path) -> LocalModel | None:
        """A checkpoint folder (config.json + *.safetensors); checked when it is loaded."""
        weights = sorted(path.glob("*.safetensors")) if path.is_dir() else []
        if not weights or not (path / CONFIG_FILE).is_file():
            return None
        return LocalModel(
            name=path.name,
            format=self.name,
            path=path,
            files=(path / CONFIG_FILE, *weights),
            quant=AWQ_QUANT,
            source="path",
        )

    def select(
        self, listing: Listing, quant: str | None, entry: CatalogEntry | None, choose: ChooseQuant
    ) -> Selection | None:
        chosen = tuple(f for f in listing.files if _checkpoint_file(f))
        if not any(f.path.endswith(".safetensors") for f in chosen):
            return None
        return Selection(
            format=self.name,
            quant=AWQ_QUANT,
            layout="folder",
            files=chosen,
            local_paths=tuple(f.path for f in chosen),
            opens="",
        )

    def offered_quants(self, listing: Listing) -> dict[str, int]:
        chosen = self.select(listing, None, None, _no_choice)
        return {AWQ_QUANT: sum(f.size_bytes for f in chosen.files)} if chosen else {}

    def check_files(self, paths: tuple[Path, ...]) -> None:
        return None  # the checkpoint's config is checked when it is loaded (``describe``)

    def describe(self, model: LocalModel) -> ModelFacts:
        checkpoint = read_checkpoint(model.path)
        require_awq(checkpoint)
        trained = ArchFromConfig.from_config(checkpoint.config).n_ctx_train
        return ModelFacts(hf_metadata(model.path, checkpoint.config), trained)

    def plan(self, model: LocalModel, hardware: Hardware, request: PlanRequest) -> Plan:
        figures = AwqFigures.from_checkpoint(read_checkpoint(model.path))
        return plan_awq(figures, hardware, request, model_name=model.name)

    def load_settings(self, plan: Plan, path: Path) -> LoadSettings:
        if not isinstance(plan, AwqPlan):
            raise TypeError(f"an AWQ model loads from an AWQ plan, not {type(plan).__name__}")
        return AwqSettings(
            model_dir=Path(path), n_ctx=plan.n_ctx, device=plan.torch_device,
            n_threads=plan.n_threads,
        )  # fmt: skip


def _checkpoint_file(remote: RemoteFile) -> bool:
    """A file of the checkpoint folder itself (top level): shards, config, tokenizer."""
    name = remote.path
    return "/" not in name and (name.endswith((".safetensors", ".tiktoken")) or name in EXTRA_FILES)


def _no_choice(sizes: Mapping[str, int]) -> str:
    return AWQ_QUANT  # an AWQ repo holds one checkpoint: there is nothing to choose


def register(registry: Registry) -> None:
    registry.add_format(AwqFormat())
    registry.add_backend(AwqSettings, BACKEND)
