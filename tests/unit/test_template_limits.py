"""Hostile chat templates are refused within bounded time and memory (issue 9, item 2).

Each template below hung for over a minute or took gigabytes before the limits in
``formats.jinja_limits``; now each ends in ``UnsafeTemplateError`` (exit 6), in
``show --render`` as in the library, and legitimate templates still render.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localchat.errors import ExitCode, TemplateError, TemplateRejected, UnsafeTemplateError
from localchat.formats.jinja import SandboxedTemplate
from localchat.types import Message
from tests.fixtures.memory import PRINT_PEAK_RSS_KIB, peak_rss_kib, reset_peak_rss
from tests.unit.test_formats_resolve import GEMMA3, LLAMA31, write_gguf

NS = "{% set ns = namespace(s='x', l=['x'], n=3) %}"
LOOP64 = "{% for i in range(64) %}"
# name -> template: the examples first, then more of the same kind
HOSTILE_TEMPLATES = {
    "nested range loops printing nothing": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ),
    "power of a power": "{{ 10 ** (10 ** 8) }}",
    "constant-folded string repeat": "{{ 'x' * 10**9 }}",
    "tojson indent": "{{ messages|tojson(indent=10**8) }}",
    "center": "{{ 'x'|center(10**9) }}",
    "string doubling via namespace": NS + LOOP64 + "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "literal string repeat": "{{ 'x' * 1000000000 }}",
    "repeat through a variable": "{% set n = 1000000000 %}{{ 'x' * n }}",
    "power through a variable": "{% set n = 10 ** 8 %}{{ 10 ** n }}",
    "integer squaring": NS + LOOP64 + "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
    "doubling with +": NS + LOOP64 + "{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "list nesting printed": NS + LOOP64 + "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
    "list nesting to json": NS + LOOP64 + "{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
    "{{ ns.l|tojson }}",
    "list repeat joined": "{% set b = 'x' * 100000 %}{{ ([b] * 100000)|join }}",
    "center literal (folded)": "{{ 'x'|center(1000000000) }}",
    "center method": "{{ 'x'.center(1000000000) }}",
    "ljust method": "{{ 'x'.ljust(1000000000) }}",
    "percent format width": "{{ '%1000000000s' % 'x' }}",
    "format filter width": "{{ '%1000000000s'|format('x') }}",
    "str.format width": "{{ '{:>1000000000}'.format('x') }}",
    "indent": "{{ 'a\nb'|indent(1000000000) }}",
    "wordwrap": "{{ 'x'|wordwrap(1000000000) }}",
    "truncate": "{{ 'x'|truncate(1000000000) }}",
    "batch fill": "{{ range(10)|batch(100000000, 'x')|list }}",
    "slice": "{{ [1]|slice(100000000)|list|length }}",
    "map center": "{{ range(100000)|map('string')|map('center', 100000)|list|length }}",
    "sum of lists": "{% set l = [[1] * 1000] * 1000 %}{{ l|sum(start=[])|length }}",
    "loops over a list": "{% set l = range(100000)|list %}"
    "{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",
    "macro recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "macro fan-out": "{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
    "{% endmacro %}{{ f(0) }}",
    "recursive loop": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "deeply nested ifs": "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000,
    "deeply nested parentheses": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "output bomb": "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
}
CONVERSATION = [
    Message("system", "Be brief."),
    Message("user", "Hi"),
    Message("assistant", "Hello"),
]


@pytest.fixture(autouse=True)
def short_render_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall-clock budget is 3 s; the loops below hit it, so tests use less."""
    from localchat.formats import jinja_limits

    monkeypatch.setattr(jinja_limits, "RENDER_SECONDS", 0.5)


@pytest.mark.parametrize("name", sorted(HOSTILE_TEMPLATES))
def test_hostile_template_is_refused(name: str) -> None:
    with pytest.raises(UnsafeTemplateError) as caught:
        SandboxedTemplate(HOSTILE_TEMPLATES[name])(CONVERSATION, True)
    line = caught.value.one_line()
    assert "refused" in line and "\n" not in line and len(line) < 400
    assert caught.value.exit_code == ExitCode.CORRUPT_MODEL_FILE


def test_template_errors_live_in_the_one_hierarchy() -> None:
    import localchat.errors
    import localchat.formats

    assert localchat.formats.TemplateError is localchat.errors.TemplateError
    assert issubclass(UnsafeTemplateError, TemplateError)
    assert issubclass(TemplateRejected, TemplateError)


def test_real_templates_still_render_long_conversations() -> None:
    long_turns = [Message("user" if i % 2 == 0 else "assistant", "word " * 2000) for i in range(41)]
    for source in (GEMMA3, LLAMA31):
        text = SandboxedTemplate(source, bos_token="<bos>")(long_turns, True)
        assert text.count("word") == 41 * 2000
    loops = "{% for m in messages %}{{ loop.index }}{{ m.content|trim|length }};{% endfor %}"
    assert SandboxedTemplate(loops)(CONVERSATION, True) == "19;22;35;"
    maths = "{{ 2 ** 64 }} {{ 'ab' * 3 }} {{ '%5s' % 'x' }} {{ [1, 2]|sum }} {{ 'x'|center(5) }}"
    assert (
        SandboxedTemplate(maths)(CONVERSATION, True) == "18446744073709551616 ababab     x 3   x  "
    )


def test_every_hostile_template_stays_within_memory(tmp_path: Path) -> None:
    """All of them, one process, under a 2 GiB address-space limit: none takes memory."""
    script = tmp_path / "render_all.py"
    script.write_text(
        "import json, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from localchat.types import Message\n"
        "from localchat.errors import UnsafeTemplateError\n"
        "from localchat.formats.jinja import SandboxedTemplate\n"
        "from localchat.formats import jinja_limits\n"
        "jinja_limits.RENDER_SECONDS = 0.5\n"
        "results = {}\n"
        "for name, source in json.load(sys.stdin).items():\n"
        "    try:\n"
        "        SandboxedTemplate(source)([Message('user', 'hi')], True)\n"
        "        results[name] = 'rendered'\n"
        "    except UnsafeTemplateError:\n"
        "        results[name] = 'refused'\n"
        "    except BaseException as exc:\n"
        "        results[name] = type(exc).__name__\n"
        "print(json.dumps(results))\n" + PRINT_PEAK_RSS_KIB
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        input=json.dumps(HOSTILE_TEMPLATES),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results_line, max_rss_kib = done.stdout.splitlines()
    assert json.loads(results_line) == dict.fromkeys(HOSTILE_TEMPLATES, "refused")
    assert int(max_rss_kib) < 600 * 1024  # each was 1-4.5 GB before the limits


def test_show_render_refuses_a_hostile_gguf_template(tmp_path: Path, capsysbinary) -> None:
    from localchat.cli.main import main

    rss_before_kib = reset_peak_rss()
    messages = tmp_path / "messages.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    for name in ("constant-folded string repeat", "string doubling via namespace"):
        path = write_gguf(tmp_path / "bomb.gguf", HOSTILE_TEMPLATES[name])
        for extra in ([], ["--render", str(messages)]):
            with pytest.raises(SystemExit) as exited:
                main(["show", str(path), *extra])
            captured = capsysbinary.readouterr()
            err = captured.err.decode()
            assert exited.value.code == ExitCode.CORRUPT_MODEL_FILE, err
            assert err.startswith("localchat: error: ") and err.count("\n") == 1
            assert "refused" in err and captured.out == b""
    assert peak_rss_kib() - rss_before_kib < 1 << 20  # KiB: under 1 GiB more
