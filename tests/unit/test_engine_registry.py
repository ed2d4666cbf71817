"""Model formats and backends register themselves (``engine.registry``), built-ins as
plugins do; the layers above ask the registry and never compare format names."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from localchat.engine import settings_for_plan
from localchat.engine.registry import (
    DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP,
    Registry,
    load_plugins,
    registry,
)
from localchat.engine.settings import AwqSettings, LlamaSettings, RemoteSettings
from localchat.errors import ConfigError, CorruptModelFile, ModelNotFound
from localchat.planner import PlanRequest, plan_for_file, what_if_hardware
from tests.unit.test_awq_planning import write_checkpoint

TOY_PLUGIN = """
from pathlib import Path

from localchat.store import LocalModel


class ToyFormat:
    name = "toy"
    files_hint = "a .toy file"

    def owns_quant(self, quant):
        return quant.upper() == "TOY"

    def local_model(self, path):
        if path.suffix != ".toy":
            return None
        return LocalModel(name=path.name, format=self.name, path=path, files=(path,))


def register(registry):
    registry.add_format(ToyFormat())
"""


@pytest.fixture
def toy_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real installed plugin: a module and a dist-info naming it as an entry point."""
    (tmp_path / "toy_localchat_plugin.py").write_text(TOY_PLUGIN)
    dist = tmp_path / "toy_localchat_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-localchat-plugin\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntoy = toy_localchat_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toy_localchat_plugin"
    sys.modules.pop("toy_localchat_plugin", None)


def names(formats: Sequence[object]) -> list[str]:
    return [getattr(fmt, "name", "") for fmt in formats]


def test_the_built_in_formats_and_backends_register_in_order() -> None:
    built_in = registry()
    assert names(built_in.formats)[:2] == ["gguf", "awq"]
    assert built_in.format_named("awq").owns_quant("awq")
    assert not built_in.format_named("gguf").owns_quant("AWQ")
    for settings in (LlamaSettings(Path("m.gguf")), AwqSettings(Path("m")), RemoteSettings("u")):
        assert callable(built_in.backend_factory(settings))


def test_an_installed_plugin_registers_through_its_entry_point(
    toy_plugin: str, tmp_path: Path
) -> None:
    plugged = load_plugins(Registry(), DEFAULT_PLUGINS)
    assert names(plugged.formats) == ["gguf", "awq", "toy"]
    toy_file = tmp_path / "model.toy"
    toy_file.write_text("TOY")
    assert plugged.local_model_at(toy_file).format == "toy"
    assert names(plugged.formats_for_quant("toy")) == ["toy"]
    assert names(plugged.formats_for_quant(None)) == ["gguf", "awq", "toy"]
    assert names(plugged.formats_for_quant("no-such")) == ["gguf", "awq", "toy"]


def test_a_format_registered_twice_is_refused(toy_plugin: str) -> None:
    with pytest.raises(ConfigError, match="two plugins register the model format 'toy'"):
        load_plugins(Registry(), (toy_plugin,))


def test_an_unknown_format_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="no installed backend runs 'safetensors' models"):
        registry().format_named("safetensors")


def test_paths_are_recognised_by_their_format(tiny_gguf: Path, tmp_path: Path) -> None:
    assert registry().local_model_at(tiny_gguf).format == "gguf"
    checkpoint = write_checkpoint(tmp_path / "ckpt")
    model = registry().local_model_at(checkpoint)
    assert (model.format, model.quant, model.path) == ("awq", "AWQ", checkpoint)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    with pytest.raises(ModelNotFound, match="is not a model file") as caught:
        registry().local_model_at(notes)
    assert caught.value.hint == ("give a .gguf file, an AWQ checkpoint folder, or a model name")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFound, match="is not a model folder"):
        registry().local_model_at(empty)
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUX" + bytes(64))
    with pytest.raises(CorruptModelFile, match="not a GGUF file"):
        registry().local_model_at(damaged)


def test_a_plan_loads_with_its_formats_settings(gemma_path: Path, tmp_path: Path) -> None:
    hardware = what_if_hardware(ram="16GiB", cpu_only=True)
    gguf_plan = plan_for_file(gemma_path, hardware)
    assert isinstance(settings_for_plan(gguf_plan, gemma_path), LlamaSettings)
    checkpoint = write_checkpoint(tmp_path / "ckpt")
    awq = registry().format_named("awq")
    awq_plan = awq.plan(registry().local_model_at(checkpoint), hardware, PlanRequest(n_ctx=512))
    settings = settings_for_plan(awq_plan, checkpoint, {"n_threads": 2})
    assert isinstance(settings, AwqSettings)
    assert (settings.device, settings.n_ctx, settings.n_threads) == ("cpu", 512, 2)
    with pytest.raises(ConfigError, match="unknown load setting"):
        settings_for_plan(awq_plan, checkpoint, {"n_gpu_layers": 3})


def test_awq_describes_a_checkpoint_in_gguf_terms(tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "ckpt")
    (checkpoint / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    awq = registry().format_named("awq")
    facts = awq.describe(registry().local_model_at(checkpoint))
    assert facts.metadata["tokenizer.eos_token"] == "</s>"
    assert facts.n_ctx_train is not None and facts.n_ctx_train > 0
