"""`cifarb study CONFIG.toml`: run a dataset x arch x aug x seed matrix, resumably, locally or on Slurm."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from cifarb.commands._common import positive_int

DESCRIPTION = """\
Expand the matrix in CONFIG.toml (datasets x archs x augs x seeds) into cells. Each cell is one
`cifarb train` run directory <out>/<dataset>-<arch>-<aug>-s<seed>, followed by `cifarb eval` on
-C (official CIFAR-10-C/ under the root, else the generated set in c_root) and CIFAR-10.1
(CIFAR-10 only), for whatever data is present. The CIFAR-B evaluation is written by train.

Rerunning is safe: finished cells (all evaluation JSONs present and valid) are skipped, interrupted
training is resumed with --resume, and missing evaluations are added. Child-process output goes to
<out>/_logs/<cell>.log. CONFIG may also name a bundled example: cpu-slice, paper.
"""

EPILOG = """\
examples:
  cifarb study cpu-slice --dry-run
  cifarb study my-study.toml --jobs 2
  cifarb study paper --launcher slurm --jobs 16
then: cifarb report <out> --html report.html
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "study",
        help="run a matrix of training runs + evaluations (resumable; local or Slurm)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="CONFIG.toml", help="study config (TOML), or a bundled example name")
    p.add_argument("--dry-run", action="store_true", help="list the cells, their state and planned steps; run nothing")
    p.add_argument(
        "--launcher", choices=("local", "slurm"), default="local",
        help="local: child processes on this machine (default); slurm: one submitit job per cell",
    )
    p.add_argument(
        "--jobs", type=positive_int, default=None, metavar="N",
        help="cells at a time (local default 1; slurm: array parallelism, default unlimited)",
    )
    p.add_argument("--out", metavar="DIR", help="study folder (default: [study].out in the config)")
    p.add_argument(
        "--submitit-cluster", choices=("slurm", "local", "debug"), default="slurm",
        help="with --launcher slurm: submitit's cluster; local/debug run the Slurm code path without Slurm",
    )
    p.add_argument(
        "--threads", type=positive_int, default=None, metavar="N",
        help="CPU threads of each cell's train/eval process (default: the config's threads, else the cores "
        "shared out over --jobs when several cells run at once, else each command's own default)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _describe(plan) -> str:  # noqa: ANN001 - CellPlan, imported lazily
    steps = {
        "done": "nothing",
        "new": "train",
        "resume": "train --resume",
        "evaluate": "",
        "broken": "nothing (needs attention)",
    }[plan.state]
    evals = [f"eval {e.dataset}" for e in plan.missing if e.kind != "b"]
    return ", ".join([s for s in [steps] if s] + evals) or "nothing"


STUDY_INFO = "_study.json"


def _share_threads(config, threads: int | None, jobs: int, launcher: str):  # noqa: ANN001, ANN202
    """The config with each cell's thread count filled in: --threads, else the config's, else a share."""
    from dataclasses import replace

    from cifarb._threads import available_cores, study_share

    share, note = None, ""
    if threads is not None:
        share, note = threads, f"threads per cell: {threads} (--threads)"
    elif launcher == "local" and jobs > 1:
        share = study_share(jobs)
        note = f"threads per cell: {share} ({available_cores()} cores shared by {jobs} cells at a time)"
    if share is None:
        return config, note
    cells = tuple(
        replace(c, settings=replace(c.settings, threads=threads if threads is not None else c.settings.threads or share))
        for c in config.cells
    )
    return replace(config, cells=cells), note


def _write_study_info(config) -> None:  # noqa: ANN001 - StudyConfig, imported lazily
    """<out>/_study.json: the study's name and baseline, which `cifarb report` reads."""
    from cifarb._atomic import atomic_write_json
    from cifarb.errors import CifarbError

    try:
        config.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config.out / STUDY_INFO, config.describe())
    except OSError as exc:
        raise CifarbError(f"cannot write {config.out / STUDY_INFO}: {exc.strerror}; choose another --out") from None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from cifarb.study.config import load_config
    from cifarb.study.runner import plan_study, run_study

    config = load_config(args.config, out=args.out)
    jobs = args.jobs if args.jobs is not None else (1 if args.launcher == "local" else 0)
    config, threads_note = _share_threads(config, args.threads, jobs, args.launcher)
    plans = plan_study(config)
    counts: dict[str, int] = {}
    for p in plans:
        counts[p.state] = counts.get(p.state, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"study {config.name}: {len(plans)} cells in {config.out} ({summary})")
    if threads_note:
        print(threads_note)
    if args.dry_run:
        print(f"baseline (what the report compares every method with): {config.baseline}")
        width = max(len(p.name) for p in plans)
        left_out: dict[str, int] = {}
        for p in plans:
            evals = ", ".join(e.dataset for e in p.evals)
            print(f"  {p.name:<{width}}  {p.state:<8}  to do: {_describe(p):<30}  evaluations: {evals}")
            if p.problem:
                print(f"  {'':<{width}}  problem: {p.problem}")
            for reason in p.skipped:
                left_out[reason] = left_out.get(reason, 0) + 1
        for reason, n in left_out.items():
            print(f"left out in {n} cell(s): {reason}")
        return 0

    _write_study_info(config)

    def report(outcome) -> None:  # noqa: ANN001 - CellOutcome
        if outcome.skipped:
            return
        if outcome.ok:
            print(f"  ok    {outcome.name}  ({', '.join(outcome.ran) or 'nothing to do'})", flush=True)
        else:
            print(f"  FAIL  {outcome.name}: {outcome.error}", flush=True)

    # SIGTERM (kill, a scheduler ending the driver) stops the children like Ctrl-C does.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        outcomes = run_study(
            config,
            launcher=args.launcher,
            jobs=jobs,
            cluster=args.submitit_cluster,
            progress=not args.no_progress,
            on_done=report,
        )
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    failed = [o for o in outcomes if not o.ok]
    skipped = sum(o.skipped for o in outcomes)
    print(
        f"study {config.name}: {len(outcomes) - len(failed) - skipped} cells run, {skipped} already done, "
        f"{len(failed)} failed"
    )
    if failed:
        print(
            f"cifarb: error: {len(failed)} cell(s) failed ({', '.join(o.name for o in failed)}); read their logs in "
            f"{config.out / '_logs'}, fix, and rerun the same command to resume",
            file=sys.stderr,
        )
        return 1
    print(f"next: cifarb report {config.out} --html {config.out / 'report.html'}")
    return 0
