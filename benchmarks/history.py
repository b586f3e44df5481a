"""History sentences of the generated pages, computed from saved results files.

A page that says how an earlier run did, or what the calibration study found, goes stale
when those words are written by hand. Here they are counted from the files: a previous
benchmark run's ``--results`` file against this run's results, and the calibration
study's ``--json`` file. With no file given, nothing is said.

The inputs are plain: a benchmark run's criterion gaps ``{(transfer, ratio): default −
best fixed}`` (``zero_shot.criterion_gaps``) and the study's numbers ``{combination:
{cell: {"vs_best_fixed": ...}}}`` (``calibration_rules.report``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.calibration_variants import BEFORE, shipped_combination

CRITERION_POINTS = 2.0  # the new default may be at most this far below the best fixed scoring
# Settings that change how a run is executed, not its numbers.
RUN_ONLY_SETTINGS = ("jobs", "finished_only")


def cells_within(numbers: Mapping[str, Mapping[str, Mapping[str, float]]],
                 points: float = CRITERION_POINTS) -> dict[str, int]:
    """Per combination of the study, its cells within ``points`` of the best fixed scoring."""
    return {name: sum(cell["vs_best_fixed"] >= -points for cell in per_cell.values())
            for name, per_cell in numbers.items()}


def cell_name(transfer: str, ratio: str) -> str:
    return f"transfer {transfer}, {ratio.replace('_', '/')}"


def misses(gaps: Mapping[tuple[str, str], float], points: float = CRITERION_POINTS) -> list[str]:
    """The cells more than ``points`` below the best fixed scoring, e.g. ``"transfer 0, 50/50: -2.2"``."""
    return [f"{cell_name(*cell)}: {gap:+.1f}" for cell, gap in gaps.items() if gap < -points]


def changed_settings(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Names of the benchmark settings (``dataclasses.asdict(Settings)``, as saved in a
    ``--results`` file) in which two runs differ; what only changes the execution is left out."""
    keys = sorted((set(previous) | set(current)) - set(RUN_ONLY_SETTINGS))
    return [key for key in keys if previous.get(key) != current.get(key)]


def previous_run_sentence(previous_gaps: Mapping[tuple[str, str], float], current_gaps: Mapping[tuple[str, str], float],
                          command: str, changed: Sequence[str] | None,
                          calibrations: tuple[str | None, str | None] = (None, None)) -> str:
    """How a previous run did on the criterion against this run, and whether it ran the
    same benchmark (``changed``: :func:`changed_settings`; None when the previous run's
    settings were not saved). ``calibrations``: the (previous, current) runs'
    calibration, named only when both are known and differ."""
    before, now = misses(previous_gaps), misses(current_gaps)
    old_calibration, new_calibration = calibrations
    named = bool(old_calibration and new_calibration and old_calibration != new_calibration)
    text = (f"the previous run of this benchmark (`{command}`{f', calibration {old_calibration}' if named else ''}) "
            f"missed the {CRITERION_POINTS:g}-point criterion in {len(before)} of {len(previous_gaps)} cells"
            + (f" ({'; '.join(before)})" if before else "")
            + f"; this run{f' (calibration {new_calibration})' if named else ''} misses it in {len(now)} of "
            f"{len(current_gaps)}"
            + (f" ({'; '.join(now)})" if now else "") + ".")
    if changed is None:
        return text
    if changed:
        return text + f" The two runs' benchmark settings differ in: {', '.join(changed)}."
    return text + " Both ran the same benchmark settings."


def study_sentence(study: Mapping[str, Any], benchmark_seed: int) -> str:
    """What the calibration study (its saved ``--json`` file) measured for the calibration
    before it and for the one ``psftr train`` ships now."""
    numbers = study["rules"]
    within = cells_within(numbers)
    cells = len(next(iter(numbers.values()), {}))
    seeds = sorted({int(r["data_seed"]) for r in study.get("results", [])})
    where = (f"generator seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}, not this page's "
             f"{benchmark_seed}" if seeds else "other generator seeds")
    shipped = shipped_combination()
    counts = []
    if BEFORE in within and BEFORE != shipped:
        counts.append(f"the calibration before the study ({BEFORE}) was within {CRITERION_POINTS:g} points of the "
                      f"best fixed scoring in {within[BEFORE]} of {cells} cells")
    if shipped in within:
        counts.append(f"the one `psftr train` ships now ({shipped}) in {within[shipped]}" if counts else
                      f"the calibration `psftr train` ships now ({shipped}) was within {CRITERION_POINTS:g} points "
                      f"of the best fixed scoring in {within[shipped]} of {cells} cells")
    text = f"The [calibration study](calibration_rules.md) ran on development data ({where})"
    return text + (": there " + ", ".join(counts) + "." if counts else ".")


def history_lines(sentences: Sequence[str]) -> list[str]:
    """The page's History paragraph (and a blank line); nothing when there is nothing to say."""
    if not sentences:
        return []
    first, *rest = sentences
    return [" ".join(["History: " + first, *rest]), ""]


def portable_command(args: Sequence[str], out_dir: str | None) -> str:
    """The command line as a page records it: the work folder ``out_dir`` (and paths in
    it) written as ``OUT_DIR``, other absolute paths relative to the working directory
    when inside it, else as ``PATH/<name>``, so no path of the machine that ran it is
    published."""
    root = str(out_dir).rstrip("/") if out_dir else None
    return " ".join(_portable(arg, root) for arg in args)


def _portable(arg: str, root: str | None) -> str:
    import os
    import shlex

    if root and (arg == root or arg.startswith(root + "/")):
        return "OUT_DIR" + arg[len(root):].rstrip("/")
    if os.path.isabs(arg):
        here = os.getcwd().rstrip("/") + "/"
        arg = arg[len(here):] if arg.startswith(here) else "PATH/" + os.path.basename(arg.rstrip("/"))
    return shlex.quote(arg)
