"""Run a study's cells: train, then evaluate on whatever data is present; resumable; local or Slurm.

Each cell is `cifarb train ... --out <study_out>/<cell>` (or `--resume` when a run is there but has
not finished) followed by `cifarb eval --model <rundir> --dataset ... --out <rundir>` for -C and
CIFAR-10.1. A cell whose evaluation JSONs are all present and valid is skipped. Commands run as child
processes; their output goes to `<study_out>/_logs/<cell>.log` (outside the run directory, which
`train` needs empty to start). Launchers: a local process pool (concurrent.futures) or Slurm via
submitit; there is no scheduler of our own.

One driver per cell: `run_cell` holds an OS lock on `<study_out>/_locks/<cell>` (two studies on one
folder share out the cells instead of corrupting them), and the local launcher's children die with the
driver (Linux PR_SET_PDEATHSIG), so a `kill -9` of the study leaves no training running unsupervised;
the next study run resumes those cells. Slurm jobs outlive the driver by design.
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError, UsageError
from cifarb.runs.lock import FolderLock, holder_pid
from cifarb.runs.rundir import RunDir
from cifarb.study.config import Cell, StudyConfig

# Keys a result JSON must have for an evaluation to count as finished.
_RESULT_KEYS = ("dataset", "n_images", "accuracy", "macro_std")
_C_DIRS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}


def default_command() -> tuple[str, ...]:
    """How child processes run cifarb: this interpreter, `-m cifarb`."""
    return (sys.executable, "-m", "cifarb")


@dataclass(frozen=True)
class EvalStep:
    """One evaluation of a trained cell."""

    kind: str  # "b" | "c" | "10.1"
    dataset: str  # evaluation name passed to --dataset
    root: str | None
    accepted: tuple[str, ...]  # eval/<stem>.json names that count as this evaluation done
    note: str = ""


@dataclass(frozen=True)
class CellPlan:
    """What one cell still needs."""

    cell: Cell
    rundir: Path
    state: str  # "done" | "new" | "resume" | "evaluate" | "broken"
    evals: tuple[EvalStep, ...]  # all evaluations that apply (data present)
    missing: tuple[EvalStep, ...]  # the ones not done yet
    skipped: tuple[str, ...] = ()  # evaluations that do not apply, with the reason
    problem: str = ""

    @property
    def name(self) -> str:
        return self.cell.name


@dataclass
class CellOutcome:
    name: str
    ok: bool
    ran: list[str] = field(default_factory=list)
    error: str = ""
    log: str = ""
    skipped: bool = False


# --- data discovery -------------------------------------------------------------------------------
def _resolve_root(root: str | None) -> Path | None:
    if root:
        return Path(root)
    if os.environ.get("CIFARB_DATA"):
        return Path(os.environ["CIFARB_DATA"])
    try:
        from cifarb.data.root import resolve_root
    except ImportError:  # data layer not installed in this build: no default root to look in
        return None
    return Path(resolve_root(None))


def applicable_evals(cell: Cell) -> tuple[list[EvalStep], list[str]]:
    """The evaluations whose data is present for this cell, and why any others are left out."""
    s = cell.settings
    ds = cell.dataset
    steps = [EvalStep("b", f"{ds}-b", s.root, (f"{ds}-b",), "written by train")]
    skipped: list[str] = []
    root = _resolve_root(s.root)
    if "c" in s.evals:
        c_dir = _C_DIRS[ds]
        if root is not None and (root / c_dir / "labels.npy").is_file():
            steps.append(EvalStep("c", f"{ds}-c", str(root), (f"{ds}-c", f"{ds}-c-local"), f"{root / c_dir}"))
        elif s.c_root and (Path(s.c_root) / c_dir / "labels.npy").is_file():
            steps.append(EvalStep("c", f"{ds}-c", s.c_root, (f"{ds}-c-local", f"{ds}-c"), f"{Path(s.c_root) / c_dir}"))
        else:
            where = f"{root / c_dir}" if root is not None else f"<root>/{c_dir}"
            extra = f" nor {Path(s.c_root) / c_dir}/" if s.c_root else " (or set c_root to a `cifarb data make-c` folder)"
            skipped.append(f"{ds}-c: no {where}/labels.npy{extra}")
    if "10.1" in s.evals and ds == "cifar10":
        if root is not None and (root / "CIFAR-10.1" / "cifar10.1_v6_data.npy").is_file():
            steps.append(EvalStep("10.1", "cifar10.1", str(root), ("cifar10.1",), f"{root / 'CIFAR-10.1'}"))
        else:
            skipped.append(f"cifar10.1: no {root}/CIFAR-10.1/cifar10.1_v6_data.npy")
    return steps, skipped


# --- state of a run directory ---------------------------------------------------------------------
def check_result_file(path: Path, accepted: Sequence[str]) -> str | None:
    """None if `path` is a usable result JSON for one of the `accepted` dataset names, else the reason
    (report.load's check of the keys a study needs; the schema is the report's business)."""
    from cifarb.report.load import read_result

    obj, err = read_result(path, schema=False, required=_RESULT_KEYS)
    if err is None and obj["dataset"] not in accepted:
        return f"dataset is {obj['dataset']!r}, expected one of {list(accepted)}"
    if err is None and not isinstance(obj["accuracy"], int | float):
        return f"accuracy {obj['accuracy']!r} is not a fraction"
    return err


def eval_done(rundir: Path, step: EvalStep) -> bool:
    run = RunDir(rundir)
    return any(check_result_file(run.eval_path(stem), step.accepted) is None for stem in step.accepted)


def plan_cell(cell: Cell, out: Path) -> CellPlan:
    """Look at `<out>/<cell>` and decide what the cell still needs."""
    rundir = out / cell.name
    evals, skipped = applicable_evals(cell)
    missing = tuple(e for e in evals if not eval_done(rundir, e))
    if not missing:
        return CellPlan(cell, rundir, "done", tuple(evals), (), tuple(skipped))
    trained = evals[0] not in missing
    if trained:
        state = "evaluate"
    elif RunDir(rundir).manifest_path.is_file():
        state = "resume"
    elif RunDir(rundir).is_free():
        state = "new"
    else:
        problem = (
            f"{rundir} is not empty but holds no run (no manifest.json); move it away or delete it, "
            "then rerun the study"
        )
        return CellPlan(cell, rundir, "broken", tuple(evals), missing, tuple(skipped), problem)
    return CellPlan(cell, rundir, state, tuple(evals), missing, tuple(skipped))


def plan_study(config: StudyConfig) -> list[CellPlan]:
    return [plan_cell(c, config.out) for c in config.cells]


# --- commands ---------------------------------------------------------------------------------------
def train_argv(cell: Cell, rundir: Path, resume: bool, prefix: Sequence[str]) -> list[str]:
    s = cell.settings
    argv = [*prefix, "train", "--dataset", cell.dataset, "--arch", cell.arch, "--aug", cell.aug,
            "--seed", str(cell.seed), "--out", str(rundir)]
    for flag, value in (("--epochs", s.epochs), ("--batch-size", s.batch_size), ("--lr", s.lr),
                        ("--weight-decay", s.weight_decay), ("--device", s.device), ("--workers", s.workers),
                        ("--root", s.root), ("--threads", getattr(s, "threads", None))):
        if value is not None:
            argv += [flag, str(value)]
    if s.trust_local:
        argv.append("--trust-local")
    argv += list(s.train_args)
    if resume:
        argv.append("--resume")
    return argv


def eval_argv(cell: Cell, rundir: Path, step: EvalStep, prefix: Sequence[str]) -> list[str]:
    s = cell.settings
    argv = [*prefix, "eval", "--model", str(rundir), "--dataset", step.dataset, "--out", str(rundir)]
    if step.root:
        argv += ["--root", step.root]
    if s.trust_local:
        argv.append("--trust-local")
    if s.device is not None:
        argv += ["--device", s.device]
    if getattr(s, "threads", None) is not None:
        argv += ["--threads", str(s.threads)]
    argv += list(s.eval_args)
    return argv


def log_path(out: Path, cell: Cell) -> Path:
    return out / "_logs" / f"{cell.name}.log"


# Children running right now, so an interrupted study can stop them instead of leaving orphans.
_ACTIVE: set[subprocess.Popen] = set()
_ACTIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


def terminate_children(timeout: float = 30.0) -> None:
    """Stop every child this process started (SIGTERM, then SIGKILL after `timeout`); no new ones start."""
    _STOPPING.set()
    with _ACTIVE_LOCK:
        procs = list(_ACTIVE)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Run before the child's own program: ask the kernel to SIGKILL it when the driver's thread that started it
# dies (PR_SET_PDEATHSIG = 1, kept across exec), exit if the driver is already gone, then exec the command.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(137)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(argv: list[str]) -> list[str]:
    """`argv` wrapped so the child is killed when this process dies (Linux); unchanged elsewhere."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


def _run_logged(argv: list[str], log: Path, tied: bool = False) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        fh.write(f"\n=== {stamp} $ {' '.join(argv)}\n")
        fh.flush()
        with _ACTIVE_LOCK:
            if _STOPPING.is_set():
                fh.write("=== not started: the study is stopping\n")
                return 130
            try:
                proc = subprocess.Popen(die_with_parent(argv) if tied else argv, stdout=fh, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
            except OSError as exc:
                fh.write(f"cannot start {argv[0]}: {exc}\n")
                return 127
            _ACTIVE.add(proc)
        try:
            rc = proc.wait()
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(proc)
        fh.write(f"=== exit status {rc}\n")
        return rc


def cell_lock(out: Path, cell: Cell) -> FolderLock:
    """The lock one study driver holds while it works on a cell (beside, not on, the cell's run directory,
    whose own lock the `train` child takes)."""
    return FolderLock(out / "_locks" / cell.name, "study cell")


def run_cell(
    cell: Cell,
    out: Path,
    train_command: Sequence[str] | None = None,
    eval_command: Sequence[str] | None = None,
    tied: bool = False,
) -> CellOutcome:
    """Bring one cell to "done": train (new or --resume) if needed, then the missing evaluations.

    Re-plans from the disk first, so it is safe to call on a finished or half-finished cell, in this
    process, a pool worker or a Slurm job. A cell another driver is working on is left to it. `tied`:
    children die with this process (the local launcher).
    """
    lock = cell_lock(out, cell)
    if not lock.try_acquire():
        pid = holder_pid(lock.folder)
        who = f"process {pid}" if pid is not None else "another process"
        return CellOutcome(cell.name, ok=False, log=str(log_path(out, cell)),
                           error=f"cell {cell.name} is being run by {who} (another study on {out}); "
                           "run the study again once it has finished")
    try:
        return _run_cell_locked(cell, out, train_command, eval_command, tied)
    finally:
        lock.release()


def _run_cell_locked(cell: Cell, out: Path, train_command: Sequence[str] | None,
                     eval_command: Sequence[str] | None, tied: bool) -> CellOutcome:
    train_cmd = tuple(train_command or default_command())
    eval_cmd = tuple(eval_command or default_command())
    plan = plan_cell(cell, out)
    log = log_path(out, cell)
    outcome = CellOutcome(cell.name, ok=True, log=str(log))
    if plan.state == "done":
        outcome.skipped = True
        return outcome
    if plan.state == "broken":
        return CellOutcome(cell.name, ok=False, error=plan.problem, log=str(log))
    if plan.state in ("new", "resume"):
        resume = plan.state == "resume"
        outcome.ran.append("train --resume" if resume else "train")
        rc = _run_logged(train_argv(cell, plan.rundir, resume, train_cmd), log, tied)
        if rc != 0:
            outcome.ok = False
            outcome.error = f"train exited with status {rc}; see {log}"
            return outcome
        if not eval_done(plan.rundir, plan.evals[0]):
            outcome.ok = False
            outcome.error = f"train finished but {plan.rundir}/eval/{plan.evals[0].dataset}.json is missing or invalid; see {log}"
            return outcome
    failures = []
    for step in plan.missing:
        if step.kind == "b":
            continue
        outcome.ran.append(f"eval {step.dataset}")
        rc = _run_logged(eval_argv(cell, plan.rundir, step, eval_cmd), log, tied)
        if rc != 0:
            failures.append(f"eval {step.dataset} exited with status {rc}")
        elif not eval_done(plan.rundir, step):
            failures.append(f"eval {step.dataset} wrote no valid eval/{step.accepted[0]}.json")
    if failures:
        outcome.ok = False
        outcome.error = "; ".join(failures) + f"; see {log}"
    return outcome


# --- launchers --------------------------------------------------------------------------------------
def run_local(
    config: StudyConfig,
    plans: Sequence[CellPlan],
    jobs: int = 1,
    progress: bool = True,
    on_done: Callable[[CellOutcome], None] | None = None,
) -> list[CellOutcome]:
    """Run the unfinished cells with up to `jobs` cells at a time (each cell runs child processes)."""
    todo = [p for p in plans if p.state != "done"]
    outcomes = [CellOutcome(p.name, ok=True, skipped=True) for p in plans if p.state == "done"]
    if not todo:
        return outcomes
    bar = _bar(len(todo), progress)
    _STOPPING.clear()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {
            pool.submit(run_cell, p.cell, config.out, config.train_command, config.eval_command, True): p
            for p in todo
        }
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except Exception as exc:  # a bug or OS error in one cell must not hide the others' results
                result = CellOutcome(futures[fut].name, ok=False, error=f"{exc.__class__.__name__}: {exc}")
            outcomes.append(result)
            if on_done:
                on_done(result)
            bar.update(1)
    except BaseException:
        # Ctrl-C or SIGTERM: stop the running children (training resumes from its last checkpoint on the
        # next run) rather than waiting for them or leaving them orphaned.
        pool.shutdown(wait=False, cancel_futures=True)
        terminate_children()
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    return outcomes


def run_slurm(
    config: StudyConfig,
    plans: Sequence[CellPlan],
    jobs: int | None = None,
    cluster: str | None = "slurm",
    progress: bool = True,
    on_done: Callable[[CellOutcome], None] | None = None,
) -> list[CellOutcome]:
    """Submit each unfinished cell as one job of a submitit job array and wait for all of them.

    `cluster` is submitit's: "slurm" (default), or "local"/"debug" to exercise this path without
    Slurm. `[slurm]` in the config is passed to `update_parameters` (submitit's names, e.g.
    timeout_min, gpus_per_node, cpus_per_task, mem_gb, slurm_partition).
    """
    try:
        import submitit
    except ImportError:
        raise CifarbError("--launcher slurm needs submitit: pip install 'cifarb[slurm]'") from None
    todo = [p for p in plans if p.state != "done"]
    outcomes = [CellOutcome(p.name, ok=True, skipped=True) for p in plans if p.state == "done"]
    if not todo:
        return outcomes
    folder = config.out / "_submitit"
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    except Exception as exc:  # submitit raises RuntimeError/ValueError when sbatch is not there
        raise CifarbError(
            f"cannot use Slurm ({exc}); run with --launcher local, or on a machine with sbatch"
        ) from None
    params: dict[str, Any] = {"name": f"cifarb-{config.name}"}
    params.update(config.slurm)
    if jobs:
        params.setdefault("slurm_array_parallelism", jobs)
    try:
        executor.update_parameters(**params)
    except (TypeError, ValueError, NameError) as exc:  # submitit raises NameError for unknown names
        raise CifarbError(f"study config {config.source}: [slurm] parameters rejected by submitit: {exc}") from None
    n = len(todo)
    submitted = executor.map_array(
        run_cell,
        [p.cell for p in todo],
        [config.out] * n,
        [config.train_command] * n,
        [config.eval_command] * n,
    )
    bar = _bar(n, progress)
    for plan, job in zip(todo, submitted, strict=True):
        try:
            result = job.result()
        except Exception as exc:  # the job itself failed (node, time limit, ...): its logs say why
            result = CellOutcome(plan.name, ok=False, error=f"job {job.job_id} failed: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}; logs in {folder}")
        outcomes.append(result)
        if on_done:
            on_done(result)
        bar.update(1)
    bar.close()
    return outcomes


def run_study(
    config: StudyConfig,
    launcher: str = "local",
    jobs: int = 1,
    cluster: str | None = None,
    progress: bool = True,
    on_done: Callable[[CellOutcome], None] | None = None,
) -> list[CellOutcome]:
    """Plan, then run every unfinished cell with the chosen launcher; returns one outcome per cell."""
    plans = plan_study(config)
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CifarbError(f"cannot create the study folder {config.out}: {exc.strerror}; choose another --out") from None
    if launcher == "local":
        return run_local(config, plans, jobs=jobs, progress=progress, on_done=on_done)
    if launcher == "slurm":
        return run_slurm(config, plans, jobs=jobs, cluster=cluster or "slurm", progress=progress, on_done=on_done)
    raise UsageError(f"unknown launcher {launcher!r}; use local or slurm")


def _bar(total: int, progress: bool) -> Any:
    from cifarb._progress import progress_bar

    return progress_bar(total, "study cells", unit="cell", progress=progress, leave=True)
