"""store.jsonfile: the one locked, atomic JSON writer every JSON file goes through."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from localchat.jsonfile import locked_json, read_json, update_json, write_text_atomic


def _add_keys(path: str, prefix: str, count: int) -> None:
    for i in range(count):
        update_json(Path(path), lambda data, key=f"{prefix}{i}", value=i: data.update({key: value}))


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    """Two processes (two `ask`s recording calibration) each add 40 keys: all 80 survive."""
    path = tmp_path / "calibration.json"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_add_keys, args=(str(path), prefix, 40)) for prefix in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    assert len(read_json(path)) == 80


def test_a_failed_update_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    update_json(path, lambda data: data.__setitem__("kept", 1))
    try:
        with locked_json(path) as data:
            data["half"] = object()  # not JSON: the write fails
    except TypeError:
        pass
    assert read_json(path) == {"kept": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["usage.json", "usage.json.lock"]


def test_write_text_atomic_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "settings.toml"
    write_text_atomic(path, "a = 1\n")
    write_text_atomic(path, "b = 2\n")
    assert path.read_text() == "b = 2\n"
    assert [p.name for p in path.parent.iterdir()] == ["settings.toml"]


def test_every_json_writer_goes_through_jsonfile() -> None:
    """No module writes JSON documents by hand any more (four writers were one too many)."""
    root = Path(__file__).resolve().parents[2] / "localchat"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "jsonfile.py"
        and ("json.dump(" in path.read_text() and "os.replace" in path.read_text())
    ]
    assert offenders == []
