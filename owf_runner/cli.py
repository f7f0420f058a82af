"""The ``owf-run`` command: parse arguments, call the core, map errors to exit codes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from owf_runner import __version__, boundary

if TYPE_CHECKING:
    from owf_runner.runner import RunReporter

COMMANDS = {"run", "validate", "plan", "schema", "emulate", "history", "show", "token"}


def _example(arguments: str) -> str:
    """The last line of a command's help: one command line a user can copy and adapt."""
    return f"Example: owf-run {arguments}"


app = typer.Typer(
    # typer's own --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks never show local variables
    help="Run Okta Workflows API-endpoint flows from YAML job files.",
    epilog=_example("jobs/onboarding.yaml --emulate"),
)

JobArg = Annotated[Path, typer.Argument(help="The job file", show_default=False)]
VarOpt = Annotated[list[str], typer.Option("--var", help="KEY=VALUE; overrides the job's vars")]
VarsFileOpt = Annotated[Path | None, typer.Option("--vars-file", help="YAML/JSON mapping of vars")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only failures and the summary")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Every item and response")]
EmulateOpt = Annotated[
    bool, typer.Option("--emulate", help="Run against the built-in Okta emulator")
]
EmulatorOpt = Annotated[
    str | None,
    typer.Option("--emulator", help="Send requests to an emulator serving at this URL"),
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="Run only the first N items of each foreach (a trial run)"),
]
StubsOpt = Annotated[
    Path | None, typer.Option("--stubs", help="Emulator stub file (default: stubs/JOB.yaml)")
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the journal and locks live (env OWF_STATE_DIR; default the XDG state dir)",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Finish the latest run of JOB: send only what did not succeed"),
]
RunIdOpt = Annotated[
    str | None, typer.Option("--run", help="With --resume: the run to finish (see history)")
]
RetryUnknownOpt = Annotated[
    bool,
    typer.Option(
        "--retry-unknown", help="With --resume: also send again what may have run (outcome unknown)"
    ),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="With --resume: resume even though the job file changed")
]
LockWaitOpt = Annotated[
    float,
    typer.Option("--lock-wait", min=0, help="Seconds to wait for another run of JOB to end"),
]
GraceOpt = Annotated[
    float,
    typer.Option(
        "--grace", min=0, help="On SIGTERM/SIGINT, seconds in-flight requests get to finish"
    ),
]
FsyncOpt = Annotated[
    bool,
    typer.Option(
        "--fsync",
        help="Put each journal record on disk before its request leaves (survives a power cut; "
        "about 1 ms per request)",
    ),
]


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Write the run's JSON report here (see docs/reports.md)"),
]
JunitOpt = Annotated[
    Path | None, typer.Option("--junit", help="Write a JUnit XML report here (CI test reports)")
]
HtmlOpt = Annotated[
    Path | None, typer.Option("--html", help="Write a self-contained HTML page of the run here")
]
LogFormatOpt = Annotated[
    LogFormat,
    typer.Option("--log-format", help="text: lines for people; json: one JSON object per line"),
]
KeepOpt = Annotated[
    int, typer.Option("--keep", min=1, help="Runs of JOB kept in the journal (older ones pruned)")
]


def _finish(action: Callable[[], int]) -> None:
    raise typer.Exit(boundary.call(action))


@app.command(epilog=_example("jobs/onboarding.yaml --emulate"))
def run(
    job: JobArg,
    var: VarOpt = [],  # noqa: B006 - typer reads the default, never mutates it
    vars_file: VarsFileOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    emulate: EmulateOpt = False,
    emulator: EmulatorOpt = None,
    stubs: StubsOpt = None,
    limit: LimitOpt = None,
    state_dir: StateDirOpt = None,
    resume: ResumeOpt = False,
    run_id: RunIdOpt = None,
    retry_unknown: RetryUnknownOpt = False,
    force: ForceOpt = False,
    lock_wait: LockWaitOpt = 0.0,
    grace: GraceOpt = 10.0,
    keep: KeepOpt = 100,
    fsync: FsyncOpt = False,
    log_format: LogFormatOpt = LogFormat.TEXT,
    report: ReportOpt = None,
    junit: JunitOpt = None,
    html: HtmlOpt = None,
) -> None:
    """Run JOB (also: `owf-run JOB`)."""
    from owf_runner import runcmd
    from owf_runner.report_files import ReportFiles

    boundary.configure_logging(verbose)
    reporter = _reporter(log_format, quiet, verbose)
    options = runcmd.RunOptions(
        var, vars_file, emulate, emulator, stubs, limit,
        state_dir, resume, run_id, retry_unknown, force, lock_wait, grace, keep, fsync,
        ReportFiles(report, junit, html),
    )  # fmt: skip
    _finish(lambda: runcmd.run(job, reporter, options))


def _reporter(log_format: LogFormat, quiet: bool, verbose: bool) -> RunReporter:
    if log_format is LogFormat.JSON:
        from owf_runner.jsonlog import JsonLinesReporter

        return JsonLinesReporter(quiet=quiet, verbose=verbose)
    from owf_runner.report import ConsoleReporter

    return ConsoleReporter(quiet=quiet, verbose=verbose)


@app.command(epilog=_example("validate jobs/*.yaml"))
def validate(
    jobs: Annotated[list[Path], typer.Argument(help="Job files", show_default=False)],
    var: VarOpt = [],  # noqa: B006
    vars_file: VarsFileOpt = None,
) -> None:
    """Load and check job files without sending anything; exit 0 or 3."""
    from owf_runner import commands

    _finish(lambda: commands.validate(jobs, var, vars_file))


@app.command(epilog=_example("plan jobs/onboarding.yaml --var first_name=Grace"))
def plan(job: JobArg, var: VarOpt = [], vars_file: VarsFileOpt = None) -> None:  # noqa: B006
    """Show every request JOB would send, rendered, secrets masked; sends nothing."""
    from owf_runner import commands

    _finish(lambda: commands.plan(job, var, vars_file))


@app.command(epilog=_example("history jobs/onboarding.yaml --limit 5"))
def history(
    job: Annotated[
        Path | None, typer.Argument(help="Only the runs of this job file", show_default=False)
    ] = None,
    state_dir: StateDirOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs")] = 20,
) -> None:
    """Recent runs from the journal: id, job, start, duration, status, counts."""
    from owf_runner import commands

    _finish(lambda: commands.history(job, state_dir, limit))


@app.command(epilog=_example("show RUN_ID --html run.html"))
def show(
    run_id: Annotated[str, typer.Argument(help="A run id (see history)", show_default=False)],
    state_dir: StateDirOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Failed items shown per step")] = 20,
    report: ReportOpt = None,
    junit: JunitOpt = None,
    html: HtmlOpt = None,
) -> None:
    """One run: its steps, and its failed items with labels, reasons and execution ids."""
    from owf_runner import commands
    from owf_runner.report_files import ReportFiles

    files = ReportFiles(report, junit, html)
    _finish(lambda: commands.show(run_id, state_dir, limit, files))


@app.command(epilog=_example("token acme --job jobs/onboarding.yaml --header"))
def token(
    org: Annotated[str, typer.Argument(help="An org of the job", show_default=False)],
    job: Annotated[
        Path, typer.Option("--job", help="The job file that defines ORG", show_default=False)
    ],
    header: Annotated[
        bool, typer.Option("--header", help="Print `Authorization: Bearer TOKEN` instead")
    ] = False,
    var: VarOpt = [],  # noqa: B006
    vars_file: VarsFileOpt = None,
    emulate: EmulateOpt = False,
    emulator: EmulatorOpt = None,
    stubs: StubsOpt = None,
) -> None:
    """Print an access token for ORG (for Postman or curl); nothing else goes to stdout."""
    from owf_runner import tokencmd

    boundary.configure_logging(verbose=False)
    options = tokencmd.TokenOptions(header, var, vars_file, emulate, emulator, stubs)
    _finish(lambda: tokencmd.token(job, org, options))


@app.command(epilog=_example("schema --report > report.schema.json"))
def schema(
    report: Annotated[
        bool, typer.Option("--report", help="The JSON report's schema instead of the job file's")
    ] = False,
) -> None:
    """Print the job-file JSON Schema (schemas/job.schema.json); --report: the JSON report's
    (schemas/report.schema.json)."""
    if report:
        from owf_runner.reports import report_schema as chosen
    else:
        from owf_runner.model import job_schema as chosen

    boundary.Output(sys.stdout).write(json.dumps(chosen(), indent=2) + "\n")


@app.command(epilog=_example("emulate --port 8080 --job jobs/onboarding.yaml"))
def emulate(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port)")] = 0,
    job: Annotated[Path | None, typer.Option(help="Register this job's credentials")] = None,
    stubs: StubsOpt = None,
    var: VarOpt = [],  # noqa: B006
    vars_file: VarsFileOpt = None,
) -> None:
    """Serve the Okta emulator on loopback until interrupted."""
    from owf_runner import commands

    _finish(lambda: commands.emulate(port, job, stubs, var, vars_file))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"owf-run {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version")
    ] = False,
) -> None:
    """Run Okta Workflows API-endpoint flows from YAML job files."""


def main(argv: list[str] | None = None) -> Any:
    _standard_descriptors_open()
    args = list(sys.argv[1:] if argv is None else argv)
    # `owf-run JOB ...` is `owf-run run JOB ...`, as the design promises.
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        args.insert(0, "run")
    return app(args=args, prog_name="owf-run")


def _standard_descriptors_open() -> None:
    """A descriptor closed at start (``owf-run JOB >&-``) is taken by /dev/null.

    Left closed, the next file or socket opened would get its number, and whatever is written
    to "standard output" (by a `command:` secret's child, say) would land in it.
    """
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != descriptor:
                os.dup2(opened, descriptor)
                os.close(opened)
