"""``forgeai doctor``: what this machine gives ForgeAI (see ``forgeai_ls.doctor``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from forgeai_ls.cli.report import print_json
from forgeai_ls.doctor import DoctorReport, diagnose

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

EXIT_DEGRADED = 1
EXIT_NO_SANDBOX = 2


@app.command("doctor")
def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    engines: Annotated[
        bool, typer.Option("--engines/--no-engines", help="Look for Docker and Podman.")
    ] = True,
) -> int:
    """Check what this machine gives ForgeAI: sandbox, limits, seccomp, engines, toolchains.

    Exit status: 0 when everything works, 1 when something is degraded or missing (each
    problem is listed with what to do), 2 when no native sandbox can run at all.
    """
    report = asyncio.run(diagnose(engines=engines))
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _print(report)
    if report.sandbox is None or not report.sandbox.ran:
        return EXIT_NO_SANDBOX
    return EXIT_DEGRADED if report.problems else 0


def _yes(value: bool) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"


def _print(report: DoctorReport) -> None:
    console = Console(highlight=False, soft_wrap=True)
    bwrap = report.bubblewrap
    console.print(f"[bold]ForgeAI {report.forgeai}[/] on Linux {report.kernel}, uid {report.uid}")
    if bwrap.path is None:
        console.print(f"bubblewrap      [red]not found[/]: {bwrap.error}")
    else:
        setuid = " (setuid root; ForgeAI uses it unprivileged)" if bwrap.setuid else ""
        console.print(f"bubblewrap      {bwrap.version} at {bwrap.path}{setuid}")
        console.print(f"user namespaces {_yes(bwrap.user_namespaces)}")
        if bwrap.apparmor_restricts_userns:
            console.print("                AppArmor restricts unprivileged user namespaces")
    if report.cgroups is not None:
        cgroups = report.cgroups
        used = ", ".join(cgroups.controllers) or "[yellow]none[/]"
        console.print(f"cgroups         {cgroups.how}; controllers: {used}")
    if report.seccomp is not None:
        console.print(f"seccomp         {_yes(report.seccomp.available)}: {report.seccomp.detail}")
    if report.sandbox is not None:
        probe = report.sandbox
        if probe.ran:
            console.print(
                f"test run        [green]ok[/] ({probe.language}, {probe.milliseconds:.0f} ms)"
            )
        else:
            console.print(f"test run        [red]failed[/]: {probe.error}")
    limits = Table(title="Limits", title_justify="left")
    limits.add_column("Limit", no_wrap=True)
    limits.add_column("Enforced by", overflow="fold")
    for fact in report.limits:
        limits.add_row(fact.limit, fact.enforced_by)
    console.print(limits)
    for engine in report.engines:
        state = "[green]reachable[/]" if engine.reachable else "[yellow]not reachable[/]"
        console.print(f"{engine.name:<15} {state} at {engine.url} ({engine.detail})")
    tools = Table(title="Toolchains", title_justify="left")
    for column in ("Plugin", "Language", "Command"):
        tools.add_column(column, no_wrap=True)
    tools.add_column("Found", overflow="fold")
    for tool in report.toolchains:
        found = tool.executable or f"[yellow]missing[/] ({tool.error})"
        tools.add_row(tool.plugin, tool.language, tool.command, found)
    console.print(tools)
    if report.problems:
        console.print("[bold yellow]Problems[/]")
        for problem in report.problems:
            console.print(f"- {problem}")
    else:
        console.print("[green]No problems found.[/]")
