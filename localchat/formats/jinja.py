"""GGUF chat templates, rendered in a locked-down Jinja sandbox.

A chat template comes from a downloaded file, so it is untrusted code.  It is
refused before it runs when it names private attributes (``__class__``,
``__globals__``…) or loads other templates (include/import/extends: the only
way Jinja reaches files), and it renders in ``ImmutableSandboxedEnvironment``
with no loader, a short list of globals and bounds on time and memory
(``formats.jinja_limits``), so anything the static check misses fails as
``UnsafeTemplateError`` instead of running.

Rendering follows Hugging Face transformers (``trim_blocks``,
``lstrip_blocks``, ``loopcontrols``, ``tojson`` without ASCII escaping), which
is how the templates' authors rendered them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import localchat.formats.jinja_limits as limits
from localchat.errors import TemplateError, TemplateRejected, UnsafeTemplateError
from localchat.formats.base import require_messages
from localchat.types import Message

MAX_TEMPLATE_CHARS = 200_000
MAX_RENDER_CHARS = limits.MAX_VALUE_CHARS
MAX_MESSAGE_CHARS = 300  # a Python error quoted in our message is cut to this
_HOSTILE_HINT = "the file's template is hostile or broken; do not use this file"


class SandboxedTemplate:
    """A compiled GGUF chat template; call it like a ``Renderer``."""

    def __init__(
        self, source: str, *, bos_token: str = "", eos_token: str = "", origin: str = "GGUF"
    ) -> None:
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.origin = origin
        self._template = _compile(source, origin)

    def __call__(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        return self.render(messages, add_generation_prompt)

    def render(
        self,
        messages: Sequence[Message],
        add_generation_prompt: bool,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The prompt; ``tools`` (Hugging Face's ``{"type": "function", "function": {…}}``
        entries) are passed to the template only when given, as templates test whether
        ``tools`` is defined."""
        require_messages(messages)
        context: dict[str, Any] = {
            "messages": [template_message(m, self.origin) for m in messages],
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if tools is not None:
            context["tools"] = [_plain(tool, self.origin) for tool in tools]
        return _render(self._template, context, self.origin)


def template_message(message: Message, origin: str = "GGUF") -> dict[str, Any]:
    """A message as Hugging Face templates read it: ``tool_calls`` (arguments as an
    object), ``tool_call_id`` and ``name`` appear only when set, since templates test
    whether they are defined."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                **({"id": call.id} if call.id else {}),
                "type": "function",
                "function": {"name": call.name, "arguments": _plain(call.arguments, origin)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _plain(value: Any, origin: str) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers), or a TemplateError."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise TemplateError(f"{origin}: a tool or call that is not JSON ({_short(exc)})") from exc


def _environment() -> Any:  # an ImmutableSandboxedEnvironment
    import jinja2.ext
    from jinja2.compiler import CodeGenerator, optimizeconst
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
    from jinja2.utils import Namespace

    class StrictSandbox(ImmutableSandboxedEnvironment):
        """Fails at the first unsafe access instead of handing back a silent Undefined."""

        # Intercepted operators are also never constant-folded at compile time.
        intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

        def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
            raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r}")

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            return limits.checked_binop(operator, left, right, self.binop_table[operator])

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            limits.charge(1)
            limits.check_arguments(args, kwargs)
            result = super().call(__context, __obj, *args, **kwargs)
            return limits.check_value(result, "a call returns a value")

        def wrap_str_format(self, value: Any) -> Any:
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:
                limits.check_format_string(value.__self__)
            return wrapped

        @staticmethod
        def lc_concat(parts: Any) -> str:
            return limits.checked_concat(parts)

    class LimitedCodeGenerator(CodeGenerator):
        """Routes ``~`` through ``lc_concat`` so joined strings are bounded too."""

        @optimizeconst
        def visit_Concat(self, node: Any, frame: Any) -> None:
            self.write("environment.lc_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    StrictSandbox.code_generator_class = LimitedCodeGenerator

    class GenerationTag(jinja2.ext.Extension):
        """transformers' ``{% generation %}…{% endgeneration %}`` marker: renders its body."""

        tags = {"generation"}  # noqa: RUF012 (Jinja's own class attribute)

        def parse(self, parser: Any) -> Any:
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    env = StrictSandbox(
        loader=None,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        extensions=[jinja2.ext.loopcontrols, GenerationTag],
        finalize=limits.check_output,
    )
    env.globals.clear()
    env.globals.update(
        range=safe_range,
        dict=dict,
        namespace=Namespace,
        raise_exception=_raise_exception,
        strftime_now=_strftime_now,
    )
    env.filters["tojson"] = _tojson
    env.filters.update(limits.bounded_filters())
    env.filters = {name: limits.guard_callable(f) for name, f in env.filters.items()}
    env.filters[_GUARD_ITER] = limits.guard_iterable
    return env


_GUARD_ITER = "localchat_guard_iter"


def _raise_exception(message: str) -> None:
    raise TemplateRejected(f"the model's chat template rejected the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:  # fmt: skip
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _compile(source: str, origin: str) -> Any:  # a jinja2.Template
    import jinja2

    if not isinstance(source, str) or not source.strip():
        raise TemplateError(f"{origin}: empty chat template")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise UnsafeTemplateError(
            f"{origin}: chat template is implausibly large ({len(source)} characters)"
        )
    env = _environment()
    try:
        with limits.budget():
            tree = env.parse(source)
            _check_tree(tree, origin)
            _guard_loops(tree)
            return env.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{origin}: chat template is not valid Jinja "
            f"(line {exc.lineno}: {_short(exc.message or '')})",
            hint="set chat_format in models.toml to a built-in format",
        ) from exc
    except (RecursionError, MemoryError, SyntaxError, limits.TemplateResourceError) as exc:
        raise UnsafeTemplateError(
            f"{origin}: chat template is too deeply nested or too large to compile; refused",
            hint=_HOSTILE_HINT,
        ) from exc
    except (jinja2.TemplateError, ValueError, TypeError) as exc:
        raise TemplateError(f"{origin}: chat template does not compile ({_short(exc)})") from exc


def _guard_loops(tree: Any) -> None:
    """Wrap every ``for`` loop's iterable so its items are charged to the render budget."""
    from jinja2 import nodes

    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _GUARD_ITER, [], [], None, None, lineno=loop.lineno)


def _short(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _check_tree(tree: Any, origin: str) -> None:
    """Refuse templates that name private attributes or load other templates."""
    from jinja2 import nodes

    loaders = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
    for node in tree.find_all(loaders):
        raise UnsafeTemplateError(
            f"{origin}: chat template tries to load other templates "
            f"({type(node).__name__.lower()}, line {node.lineno}); refused",
            hint="a chat template must not read files",
        )
    names: list[tuple[str, int]] = [(n.attr, n.lineno) for n in tree.find_all(nodes.Getattr)]
    for node in tree.find_all(nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            names.append((node.arg.value, node.lineno))
    for node in tree.find_all(nodes.Filter):
        if node.name == "attr":
            names.extend((a.value, node.lineno) for a in node.args if isinstance(a, nodes.Const))
    for name, lineno in names:
        if isinstance(name, str) and name.startswith("_"):
            raise UnsafeTemplateError(
                f"{origin}: chat template reaches for Python internals "
                f"({name!r}, line {lineno}); refused",
                hint="the file's template is hostile or broken; do not use this file",
            )


def _render(template: Any, context: dict[str, Any], origin: str) -> str:
    import jinja2
    from jinja2.exceptions import SecurityError

    pieces: list[str] = []
    size = 0
    try:
        with limits.budget():
            for piece in template.generate(**context):
                size += len(piece)
                if size > MAX_RENDER_CHARS:
                    raise limits.TemplateResourceError("its output runs away")
                pieces.append(piece)
    except SecurityError as exc:
        raise UnsafeTemplateError(
            f"{origin}: chat template tried an unsafe operation ({_short(exc)}); refused",
            hint=_HOSTILE_HINT,
        ) from exc
    except limits.TemplateResourceError as exc:
        raise UnsafeTemplateError(
            f"{origin}: chat template tried to exhaust resources ({exc}); refused",
            hint=_HOSTILE_HINT,
        ) from exc
    except (OverflowError, RecursionError, MemoryError) as exc:
        raise UnsafeTemplateError(
            f"{origin}: chat template tried to exhaust resources "
            f"({type(exc).__name__}: {_short(exc)}); refused",
            hint=_HOSTILE_HINT,
        ) from exc
    except TemplateError:
        raise
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError,
            AttributeError) as exc:  # fmt: skip
        raise TemplateError(
            f"{origin}: chat template failed to render ({type(exc).__name__}: {_short(exc)})",
            hint="set chat_format in models.toml to a built-in format",
        ) from exc
    return "".join(pieces)
