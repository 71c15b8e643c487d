"""``adamkit``: the command line. ``adamkit race`` races optimizers fairly and draws them; ``adamkit bench`` times
one optimizer step against torch.optim and the memory floor."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import bench as bench_module
from .problems import PROBLEMS
from .race import CONVENTIONS, RaceSettings, racers


def _console() -> Console:
    """Rich's console; piped output (no terminal to measure) gets 160 columns so that no number is cut."""
    width = int(os.environ.get("COLUMNS", 0)) or (None if sys.stdout.isatty() else 160)
    return Console(width=width, highlight=False)


def _split(values: tuple[str, ...] | str | None) -> list[str] | None:
    """``("a,b", "c")`` → ``["a", "b", "c"]``; nothing given → None."""
    if not values:
        return None
    items = [values] if isinstance(values, str) else list(values)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _writable_dir(out: Path) -> Path:
    """Create ``out`` if needed and prove it writable, or a clear usage error naming ``--out``."""
    probe = out / ".adamkit-write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise click.BadParameter(f"cannot write to {str(out)!r}: {err.strerror or err}", param_hint="'--out'") from err
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="adamkit", message="adamkit %(version)s")
def main() -> None:
    """adamkit: first-order optimizers on NumPy arrays. Race them (adamkit race) or time them (adamkit bench)."""


@main.command()
@click.option("--problem", "-p", "problems", multiple=True, metavar="NAME",
              help=f"Problem(s) to race, repeated or comma-separated: {', '.join(PROBLEMS)}, or module:Class "
                   "for your own adamkit.lab.Problem.  [default: quadratic]")
@click.option("--optimizers", "-o", metavar="A,B,...",
              help="Comma-separated optimizers (case-insensitive).  [default: all; see --list]")
@click.option("--steps", type=click.IntRange(min=1), help="Steps per run.  [default: the problem's]")
@click.option("--seeds", type=click.IntRange(min=1),
              help="Runs per optimizer on a stochastic problem (sine-mlp, digits): median and min–max reported. "
                   "[default: 3 for stochastic problems; deterministic ones run once]")
@click.option("--tune", is_flag=True, help="Race each optimizer at the lr of its log grid with the lowest final loss.")
@click.option("--grid", metavar="LR,LR,...", help="The lrs --tune tries.  [default: 1e-4 … 10, 11 points]")
@click.option("--convention", type=click.Choice(CONVENTIONS), default="torch", show_default=True,
              help="Which framework's form of each optimizer (an optimizer without that form is skipped).")
@click.option("--engine", type=click.Choice(["fused", "numpy"]), default="fused", show_default=True,
              help="adamkit's engine: the fused numba kernel, or the NumPy reference.")
@click.option("--target", type=float, help="Loss counted as reached for 'steps to target'.  [default: the problem's]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("race-results"),
              show_default=True, help="Directory for race.json, the PNGs and report.html.")
@click.option("--list", "list_only", is_flag=True, help="List the problems and optimizers, then exit.")
def race(problems, optimizers, steps, seeds, tune, grid, convention, engine, target, out, list_only) -> None:
    """Race optimizers fairly on a problem: a table, race.json, PNG plots and a self-contained report.html.

    With no options: the tutorial fit of y = 2x² + 3x + 5 with every optimizer adamkit has.
    """
    from .problems import get_problem
    from .race import race as run_race
    from .race import resolve_optimizers
    from .report import table, write_all

    console = _console()
    if list_only:
        for name, factory in PROBLEMS.items():
            console.print(f"problem  [bold]{name}[/]: {getattr(factory, 'description', '')}")
        for label, (cls, kwargs) in racers().items():
            args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            console.print(f"optimizer [bold]{label}[/]: adamkit.{cls.__name__}({args})")
        return
    try:
        lrs = [float(x) for x in _split(grid)] if grid else None
    except ValueError as err:
        raise click.BadParameter(f"must be comma-separated numbers, got {grid!r}", param_hint="'--grid'") from err
    settings = RaceSettings(
        problems=_split(problems) or ["quadratic"], optimizers=_split(optimizers), steps=steps, seeds=seeds,
        tune=tune, grid=lrs, convention=convention, engine=engine, target=target,
    )  # fmt: skip
    for name, check in (("--problem", lambda: [get_problem(p) for p in settings.problems]),
                        ("--optimizers", lambda: resolve_optimizers(settings.optimizers)),
                        ("--grid", settings.check)):  # fmt: skip
        try:
            check()
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint=f"'{name}'") from err
    out = _writable_dir(out)

    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("racing", total=None)

        def advance(message: str, total: int) -> None:
            bar.update(task, advance=1, total=total, description=message)

        report = run_race(settings, advance)
    with console.status("drawing the plots and writing report.html"):
        paths = write_all(report, out)
    from .report import clean

    for problem in clean(report)["problems"]:
        header, rows = table(problem)
        shown = Table(title=f"{problem['name']}: {problem['description']} — {problem['steps']} steps"
                      + (f", {problem['seeds']} seeds" if problem["seeds"] > 1 else ""))  # fmt: skip
        for i, h in enumerate(header):
            shown.add_column(h, justify="left" if i == 0 or h == "note" else "right", overflow="fold")
        for row in rows:
            shown.add_row(*row)
        console.print(shown)
        for skipped in problem["skipped"]:
            console.print(f"skipped {skipped['optimizer']}: {skipped['reason']}")
        if seeds and seeds > 1 and not problem["stochastic"]:
            console.print(f"{problem['name']} is deterministic: one run per optimizer (--seeds is for stochastic ones)")
    console.print(f"wrote {paths['json']}, {paths['html']} and the PNGs in {out} "
                  f"({time.perf_counter() - started:.1f} s)")  # fmt: skip


@main.command()
@click.option("--quick", is_flag=True, help="Fewer timed runs (about 30 s).")
@click.option("--only", metavar="A,B,...", help=f"Comma-separated: {', '.join(bench_module.names())}.")
@click.option("--workloads", metavar="NxSIZE,...", help="Tensors × elements each, e.g. 1000x1000.  "
              "[default: 1x10000000, 1000x1000, 200x50000]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench_step.json"),
              show_default=True, help="Where to write the rows as JSON.")
def bench(quick, only, workloads, json_path) -> None:
    """Time one float32 optimizer step: adamkit's fused kernel, torch.optim (fused, foreach) and the memory floor."""
    try:
        sizes = bench_module.parse_workloads(workloads) if workloads else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--workloads'") from err
    names = _split(only)
    unknown = sorted(set(names or ()) - set(bench_module.names()))
    if unknown:
        raise click.BadParameter(f"unknown optimizer(s) {unknown}; choose from {', '.join(bench_module.names())}",
                                 param_hint="'--only'")  # fmt: skip
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        with open(json_path, "a"):
            pass
    except OSError as err:
        why = f"cannot write {str(json_path)!r}: {err.strerror or err}"
        raise click.BadParameter(why, param_hint="'--json'") from err
    console = _console()
    meta = bench_module.meta()
    table = Table(title=f"float32 step, median ms — numba threads {meta['numba_threads']}, torch {meta['torch']}")
    for i, h in enumerate(["optimizer", "workload"] + [h for h, _, _ in bench_module.COLUMNS]):
        table.add_column(h, justify="left" if i == 0 else "right")
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:  # fmt: skip
        task = bar.add_task("timing", total=None)

        def show(row: dict) -> None:
            table.add_row(*bench_module.cells(row))
            bar.update(task, description=f"timed {row['optimizer']} {row['tensors']}x{row['size']}")

        rows = bench_module.run(quick, names, sizes, show)
    console.print(table)
    console.print(bench_module.LEGEND)
    console.print(f"wrote {bench_module.write_json(rows, json_path)}")
