"""Fuzzers (hypothesis): mutated pickles, .npy/.npz, predictions files, checkpoints, TOML configs and make-c
markers each end in exit 0, 1 or 2 with at most one message: never a traceback, a hang or a memory blow-up.

Commands that read only files run through `cifarb.cli.main`; the image readers (used by eval, train, flow
and make-c) are called directly, and must raise nothing but CifarbError, which `main` prints as one
message with exit 1 (or 2). Each example has a time limit (SIGALRM) and the whole module a memory bound
(peak RSS growth). Example counts in CI are in EXAMPLES; each fuzzer also has a `test_fuzz_long_*` twin
with 50 times as many random (not derandomized) examples, run only on request: `pytest -m fuzz_long`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import pickle
import resource
import signal
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifarb.cli import main
from cifarb.data import cifar_b
from cifarb.errors import CifarbError

pytestmark = pytest.mark.usefixtures("one_thread")

# Examples per fuzzer in CI (together well under 60 s on a loaded 2-core machine).
EXAMPLES = {
    "pickle": 120, "npy": 120, "npz": 60, "predictions_csv": 80, "predictions_npy": 60, "checkpoint": 50,
    "train_toml": 40, "flow_toml": 60, "study_toml": 60, "marker": 120,
}
LONG_SCALE = 50
PER_EXAMPLE_S = 20  # a hang is an example running longer than this
MAX_RSS_GROWTH = 1500 * 1024  # kB: a bound no bounded reader comes near
OFFICIAL10 = cifar_b.official_test_labels("cifar10")


def fuzz_settings(name: str, long: bool) -> settings:
    return settings(max_examples=EXAMPLES[name] * (LONG_SCALE if long else 1), deadline=None, derandomize=not long,
                    database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                          HealthCheck.data_too_large])


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail an example that runs longer than `seconds` (a hang), or that makes Python print a warning (a
    second message on stderr; deprecation warnings are hidden from users by default and not counted)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"an example ran longer than {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        shown = [f"{w.category.__name__}: {w.message}" for w in caught
                 if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
        assert not shown, shown
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
    assert grew < MAX_RSS_GROWTH, f"peak memory grew by {grew // 1024} MB while fuzzing"


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """`seed` with a few random edits: bit flips, byte sets, truncation, insertion, deletion, splices."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "int"]))
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 64))]
        else:  # a length or count field gone wild
            data[i:i + 4] = draw(st.sampled_from([2**31 - 1, 2**32 - 1, 10**9, 0])).to_bytes(4, "little")
    return bytes(data)


def run_cli(argv: list[str], capsys) -> int:
    with time_limit(PER_EXAMPLE_S):
        code = main(argv)
    out = capsys.readouterr()
    assert code in (0, 1, 2), (code, out.err[-2000:])
    assert "Traceback" not in out.err and out.err.count("cifarb: error:") <= 1, out.err[-2000:]
    if code:
        assert out.err.count("cifarb: error:") == 1 or "usage:" in out.err, out.err[-2000:]
    return code


def run_reader(fn: Callable[[], object]) -> int:
    """What `main` would return: 0, or the CifarbError's exit status; anything else fails the test."""
    with time_limit(PER_EXAMPLE_S):
        try:
            fn()
        except CifarbError as exc:
            assert str(exc).strip() and "Traceback" not in str(exc)
            return exc.exit_code
    return 0


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------- pickles

_BATCH = pickle.dumps({"batch_label": "testing batch 1 of 1", "labels": [int(x) for x in OFFICIAL10[:3]],
                       "filenames": ["a.png", "b.png", "c.png"],
                       "data": np.arange(3 * 3072, dtype=np.uint32).astype(np.uint8).reshape(3, 3072)}, protocol=2)


def fuzz_pickle(tmp_path: Path, capsys, data) -> None:
    from cifarb.data.readers import load_cifar

    root = tmp_path / "p"
    _write(root / "cifar-10-batches-py" / "test_batch", data.draw(mutated(_BATCH)))
    run_reader(lambda: load_cifar("cifar10", "test", root=root, trust_local=True))


# --------------------------------------------------------------------------------------------- .npy / .npz


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


_LABELS = _npy_bytes(np.tile(OFFICIAL10[:4], 5).astype(np.int64))
_IMAGES = _npy_bytes(np.zeros((20, 32, 32, 3), np.uint8))


def _c_root(tmp_path: Path, labels: bytes, images: bytes, marker: dict | None = None) -> Path:
    root = tmp_path / "c"
    d = root / "CIFAR-10-C"
    _write(d / "labels.npy", labels)
    _write(d / "fog.npy", images)
    if marker is not None:
        _write(d / ".cifarb-local.json", json.dumps(marker).encode())
    return root


def fuzz_npy(tmp_path: Path, capsys, data) -> None:
    from cifarb.data.readers import load_cifar_c

    which = data.draw(st.sampled_from(["labels", "images"]))
    labels = data.draw(mutated(_LABELS)) if which == "labels" else _LABELS
    images = data.draw(mutated(_IMAGES[:256])) + _IMAGES[256:] if which == "images" else _IMAGES
    root = _c_root(tmp_path, labels, images)

    def read():
        cs = load_cifar_c("cifar10", root=root, trust_local=True)
        cs.images("fog", 1).sum()

    run_reader(read)


_NPZ = (lambda: (lambda b: (np.savez(b, predictions=np.asarray(OFFICIAL10, dtype=np.int64)), b.getvalue())[1])(
    io.BytesIO()))()


def fuzz_npz(tmp_path: Path, capsys, data) -> None:
    raw = data.draw(mutated(_NPZ[:200])) + _NPZ[200:] if data.draw(st.booleans()) else data.draw(mutated(_NPZ))
    path = _write(tmp_path / "p.npz", raw)
    run_cli(["metrics", str(path), "--dataset", "cifar10-b", "--bootstrap", "0"], capsys)


# --------------------------------------------------------------------------------------------- predictions

_CSV = ("index,prediction\n" + "".join(f"{i},{int(OFFICIAL10[i])}\n" for i in range(40))).encode()
_NPY_PRED = _npy_bytes(np.asarray(OFFICIAL10, dtype=np.int64))

csv_cells = st.one_of(st.integers(-3, 10_003).map(str), st.sampled_from(["cat", "", "nan", "1e400", "-0", "2.5",
                                                                          "\x00", '"', "truck"]))


def fuzz_predictions_csv(tmp_path: Path, capsys, data) -> None:
    if data.draw(st.booleans()):
        raw = data.draw(mutated(_CSV))
    else:  # well-formed CSV with odd cells and headers
        header = data.draw(st.sampled_from(["index,prediction", "prediction,index", "index,prediction,x", "a,b",
                                            "index", ""]))
        rows = data.draw(st.lists(st.tuples(csv_cells, csv_cells), max_size=30))
        raw = (header + "\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode()
    path = _write(tmp_path / "p.csv", raw)
    run_cli(["metrics", str(path), "--dataset", "cifar10-b", "--bootstrap", "0"], capsys)


def fuzz_predictions_npy(tmp_path: Path, capsys, data) -> None:
    raw = data.draw(mutated(_NPY_PRED[:160])) + _NPY_PRED[160:]
    path = _write(tmp_path / "p.npy", raw)
    run_cli(["metrics", str(path), "--dataset", "cifar10-b", "--bootstrap", "0"], capsys)


# --------------------------------------------------------------------------------------------- checkpoints


@functools.cache
def _ckpt_seed() -> bytes:
    import torch

    from cifarb.models import build_model

    state = build_model("resnet20").state_dict()
    small = {k: v for i, (k, v) in enumerate(state.items()) if i < 6}
    buf = io.BytesIO()
    torch.save({"format": "cifarb-train-1", "epoch": 1, "model": small, "rng": {"python": (3, (1, 2), None)},
                "history": [{"epoch": 1, "lr": 0.1}]}, buf)
    return buf.getvalue()


def fuzz_checkpoint(tmp_path: Path, capsys, data) -> None:
    from cifarb.flows.checkpoint import load_flow
    from cifarb.models import zoo
    from cifarb.runs import RunDir

    raw = data.draw(mutated(_ckpt_seed()))
    path = _write(tmp_path / "run" / "checkpoints" / "last.pt", raw)
    run_reader(lambda: zoo.load_state_dict(path, full=True))
    run_reader(lambda: RunDir(tmp_path / "run").load_checkpoint())
    run_reader(lambda: load_flow(path))


# --------------------------------------------------------------------------------------------- TOML configs

toml_values = st.one_of(
    st.integers(-5, 10**12), st.floats(allow_nan=True), st.booleans(), st.text(max_size=12),
    st.lists(st.integers(-2, 300), max_size=4), st.just("../../x"), st.just("resnet20"),
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else ("-inf" if v == float("-inf") else repr(v)))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def _toml_text(data, keys: list[str]) -> str:
    table = data.draw(st.dictionaries(st.sampled_from(keys), toml_values, max_size=5))
    text = "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
    if data.draw(st.booleans()):
        text = data.draw(mutated(text.encode() or b"x = 1\n")).decode("utf-8", "replace")
    return text


_TRAIN_KEYS = ["dataset", "epochs", "batch_size", "lr", "weight_decay", "seed", "aug", "workers", "limit_train",
               "eval", "flowaug_p", "flowaug_tau", "flowaug_mode", "image_size", "nosuchkey", "out"]


def fuzz_train_toml(tmp_path: Path, capsys, data) -> None:
    cfg = tmp_path / "c.toml"
    text = _toml_text(data, _TRAIN_KEYS)
    if data.draw(st.booleans()):
        text += "[hparams]\n" + "".join(f"{k} = {_toml_value(data.draw(toml_values))}\n"
                                        for k in data.draw(st.lists(st.sampled_from(
                                            ["milestones", "momentum", "schedule", "gamma", "warmup"]), max_size=3,
                                            unique=True)))
    cfg.write_text(text, encoding="utf-8")
    # flags pin the architecture and point at an empty root: a valid file ends at "data missing" (exit 1)
    run_cli(["train", "--config", str(cfg), "--arch", "resnet20", "--root", str(tmp_path / "nodata"),
             "--out", str(tmp_path / "run"), "--no-progress"], capsys)
    assert not (tmp_path / "run").exists()


_FLOW_KEYS = ["base", "name", "epochs", "hidden", "levels", "steps", "z_dim", "lr", "batch_size", "image_size",
              "grid_n", "seed", "train_limit", "nosuchkey"]


def fuzz_flow_toml(tmp_path: Path, capsys, data) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text(_toml_text(data, _FLOW_KEYS), encoding="utf-8")
    run_cli(["flow", "train", "--config", str(cfg), "--root", str(tmp_path / "nodata"), "--out",
             str(tmp_path / "run"), "--no-progress"], capsys)
    assert not (tmp_path / "run").exists()


_STUDY_KEYS = ["name", "datasets", "archs", "augs", "seeds", "epochs", "root", "trust_local", "evals", "out"]


def fuzz_study_toml(tmp_path: Path, capsys, data) -> None:
    cfg = tmp_path / "s.toml"
    body = _toml_text(data, _STUDY_KEYS)
    cfg.write_text("[study]\n" + body if data.draw(st.booleans()) else body, encoding="utf-8")
    run_cli(["study", str(cfg), "--dry-run", "--no-progress", "--out", str(tmp_path / "study")], capsys)


# --------------------------------------------------------------------------------------------- make-c markers

marker_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 10**6), st.text(max_size=8),
                          st.lists(st.integers(-1, 10_001), max_size=6), st.dictionaries(st.text(max_size=8),
                                                                                        st.text(max_size=8),
                                                                                        max_size=3))


def fuzz_marker(tmp_path: Path, capsys, data) -> None:
    from cifarb.data import verify
    from cifarb.data.readers import load_cifar_c

    root = _c_root(tmp_path, _LABELS, _IMAGES)
    d = root / "CIFAR-10-C"
    files = {p.name: verify.sha256_of(p) for p in d.glob("*.npy")}
    marker = {"format": "cifarb-local-corruptions", "format_version": 1, "dataset": "cifar10", "n_images": 4,
              "severities": [1, 2, 3, 4, 5], "source_verified": False, "files": files}
    for key in data.draw(st.lists(st.sampled_from([*marker, "indices"]), max_size=3, unique=True)):
        marker[key] = data.draw(marker_values)
    _write(d / ".cifarb-local.json", json.dumps(marker).encode())
    result: dict = {}

    def read():
        result["set"] = load_cifar_c("cifar10", root=root)

    if run_reader(read) == 0:
        # a marker that claims anything but a JSON true never makes the data verified
        assert result["set"].verified is (marker["source_verified"] is True)


# --------------------------------------------------------------------------------------------- the tests

FUZZERS: dict[str, Callable] = {
    "pickle": fuzz_pickle, "npy": fuzz_npy, "npz": fuzz_npz, "predictions_csv": fuzz_predictions_csv,
    "predictions_npy": fuzz_predictions_npy, "checkpoint": fuzz_checkpoint, "train_toml": fuzz_train_toml,
    "flow_toml": fuzz_flow_toml, "study_toml": fuzz_study_toml, "marker": fuzz_marker,
}
assert set(FUZZERS) == set(EXAMPLES)


def _make_test(name: str, long: bool) -> Callable:
    body = FUZZERS[name]

    @fuzz_settings(name, long)
    @given(data=st.data())
    def test(request, tmp_path, capsys, data):
        body(tmp_path, capsys, data)

    def wrapper(request, tmp_path, capsys):
        if long and "fuzz_long" not in (request.config.getoption("markexpr") or ""):
            pytest.skip("long fuzz run: select it with `pytest -m fuzz_long`")
        test(request, tmp_path, capsys)

    wrapper.__name__ = f"test_fuzz_{'long_' if long else ''}{name}"
    wrapper.__doc__ = f"{EXAMPLES[name] * (LONG_SCALE if long else 1)} examples of {body.__name__}"
    return pytest.mark.fuzz_long(wrapper) if long else wrapper


for _name in FUZZERS:
    for _long in (False, True):
        _t = _make_test(_name, _long)
        globals()[_t.__name__] = _t
