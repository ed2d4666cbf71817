"""The ``localchat`` command: a lazy Click group and the one place errors become exit codes.

Subcommands live one per module in ``localchat.cli`` and are imported only when
invoked, so ``localchat ask --help`` does not pay for Textual or llama.cpp.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import NoReturn

import click

from localchat import services
from localchat.cli.options import engine_option, local_option
from localchat.errorlog import one_line, write_traceback
from localchat.errors import ExitCode, LocalchatError
from localchat.tui import run_app

# name -> "module:function"; each module defines one click command.
COMMANDS: dict[str, str] = {
    "ask": "localchat.cli.ask:ask",
    "catalog": "localchat.cli.catalog_cmd:catalog",
    "embed": "localchat.cli.embed_cmd:embed",
    "list": "localchat.cli.list_cmd:list_models",
    "pull": "localchat.cli.pull_cmd:pull",
    "rm": "localchat.cli.rm_cmd:rm",
    "hw": "localchat.cli.hw_cmd:hw",
    "plan": "localchat.cli.plan_cmd:plan",
    "search": "localchat.cli.search_cmd:search",
    "bench": "localchat.cli.bench_cmd:bench",
    "show": "localchat.cli.show_cmd:show",
    "doctor": "localchat.cli.doctor_cmd:doctor",
    "serve": "localchat.cli.serve_cmd:serve",
    "worker": "localchat.cli.worker_cmd:worker",
}

# One line per command for `localchat --help`, so listing commands imports none of them.
SHORT_HELP: dict[str, str] = {
    "ask": "Answer a prompt (and stdin) with a local model, streamed to stdout.",
    "catalog": "List the models localchat knows by name.",
    "embed": "Embed texts (arguments or stdin lines) with an embedding model, as JSON vectors.",
    "list": "List the models on disk.",
    "hw": "Show the CPU, RAM, GPUs and llama.cpp build.",
    "plan": "Show the quant, GPU layers and context that fit this machine.",
    "search": "Search the hub for models, with how each would run on this machine.",
    "bench": "Measure prompt and generation tok/s; calibrates `plan` on this machine.",
    "pull": "Download a model (resumable, verified).",
    "rm": "Delete a downloaded model.",
    "show": "Show a model's chat format and the exact prompt it is fed.",
    "doctor": "Find install problems (GPU build, AMX/SIGILL, driver, disk).",
    "serve": "Serve models to OpenAI and Ollama clients (and to ask/the app) over HTTP.",
    "worker": "Serve this machine's GPU/CPU to other machines' `--rpc` (llama.cpp RPC).",
}

EXIT_CODES_HELP = f"""
\b
Exit codes:
  {ExitCode.OK}    ok
  {ExitCode.ERROR}    other error
  {ExitCode.USAGE}    usage error (bad option, malformed config)
  {ExitCode.MODEL_NOT_FOUND}    model not found (name, repo, quant or file)
  {ExitCode.DOES_NOT_FIT}    model does not fit this machine's memory
  {ExitCode.DOWNLOAD_FAILED}    download failed (network, auth, disk space)
  {ExitCode.CORRUPT_MODEL_FILE}    model file corrupt or truncated
  {ExitCode.ENGINE_FAILED}    inference engine failed (llama.cpp load or run)
  {ExitCode.INTERRUPTED}  interrupted (Ctrl-C)
"""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def invoke(self, ctx: click.Context) -> object:
        """Catch a closed stdout here: Click's own handler would exit 1."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _silence_broken_pipe()
            raise click.exceptions.Exit(ExitCode.OK) from None


@click.group(cls=LazyGroup, invoke_without_command=True, epilog=EXIT_CODES_HELP)
@click.option("-m", "--model", "model", help="Open the app with this model loaded.")
@engine_option
@local_option
@click.version_option(package_name="localchat")
@click.pass_context
def cli(ctx: click.Context, model: str | None, engine: str | None, local: bool) -> None:
    """Run quantized LLMs on your own machine.

    With no command, opens the terminal app.  `localchat ask "..."` answers once
    on stdout; `localchat plan MODEL` shows what fits this machine.
    """
    if ctx.invoked_subcommand is None:
        run_app(model=model, engine=engine, local=local)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map localchat errors to one line and an exit code."""
    services.set_fatal_handler(fail_now)
    try:
        result = cli.main(args=argv, prog_name="localchat", standalone_mode=False)
        if isinstance(result, int):  # ctx.exit(n) is returned, not raised, in this mode
            sys.exit(result)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except click.exceptions.Abort:
        sys.exit(ExitCode.INTERRUPTED)
    except LocalchatError as exc:
        fail(exc)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        _silence_broken_pipe()
        sys.exit(ExitCode.OK)
    except OSError as exc:
        _fail_os(exc)
    except Exception as exc:  # a bug: one line for the user, the traceback to the log
        _report_internal_error(exc)
    sys.exit(ExitCode.OK)


def fail(exc: LocalchatError) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _silence_broken_pipe()
    click.echo(f"localchat: error: {exc.one_line()}", err=True)
    sys.exit(exc.exit_code)


def fail_now(exc: LocalchatError) -> NoReturn:
    """``fail`` for an error inside native code (an RPC worker lost mid-generation), which
    cannot unwind to ``main``: the same line and exit code, and the process ends now."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    # the real stderr: native calls run with sys.stderr pointed at the llama log
    click.echo(f"localchat: error: {exc.one_line()}", file=sys.__stderr__)
    os._exit(exc.exit_code)


def _fail_os(exc: OSError) -> None:
    """A file or directory localchat needs cannot be used (read-only home, disk full...)."""
    if exc.filename is None:
        _report_internal_error(exc)
    reason = exc.strerror or type(exc).__name__
    click.echo(f"localchat: error: cannot use {exc.filename}: {reason}", err=True)
    sys.exit(ExitCode.ERROR)


def _report_internal_error(exc: Exception) -> None:
    """The last resort: one line on stderr, the traceback to a log file when one can be
    written (the same log the app writes).  It must never raise, whatever state
    LOCALCHAT_HOME is in."""
    where = write_traceback(exc)
    detail = f"details in {where}" if where else "no log written"
    with contextlib.suppress(Exception):  # stderr itself may be gone; the exit code says it
        click.echo(f"localchat: internal error: {one_line(exc)} ({detail})", err=True)
    sys.exit(ExitCode.ERROR)


def _silence_broken_pipe() -> None:
    """`localchat ask ... | head` closes stdout early; that is not an error.

    Point fd 1 at /dev/null so that the interpreter's final flush cannot fail too.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
