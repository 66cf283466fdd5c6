"""The chenyaofo/pytorch-cifar-models zoo: cards against the published table and source, every architecture
against the upstream state-dict layout and outputs, prefix-verified look-up, download, and eval on the 916
real CIFAR-100 test images.

The reference is `fixtures_zoo/chenyaofo_layout.json`, written by `scripts/chenyaofo_layout.py` from the
upstream code itself (its models load the released files strictly, so their keys and shapes are the released
layout). No released weights are available offline: every forward here uses deterministic or random weights,
so accuracies are not the published ones (real-weight accuracy is not measurable here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import importlib.util
import json
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cifarb.citations import CITATIONS
from cifarb.cli import main
from cifarb.errors import CifarbError
from cifarb.models import ARCHS, _card_tables, build_model, zoo

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR100 = Path(os.environ.get("CIFARB_SHARED", REPO.parent / "shared")) / "data"
LAYOUT = json.loads((REPO / "tests" / "fixtures_zoo" / "chenyaofo_layout.json").read_text())
_TABLE, ROWS = _card_tables.table_rows(_card_tables.ASSETS / "chenyaofo_cards.toml")
CARDS = {name: card for name, card in zoo.ZOO.items() if name.startswith("chenyaofo-")}
UPSTREAM = list(LAYOUT["archs"])  # the 19 upstream architecture names
# the normalisation recorded in every upstream training log (logs/<dataset>/<arch>/default.log)
LOGGED_NORM = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.201)),
               "cifar100": ((0.507, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761))}


def _script():
    spec = importlib.util.spec_from_file_location("chenyaofo_layout", REPO / "scripts" / "chenyaofo_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYOUT_SCRIPT = _script()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _card(dataset: str, upstream: str) -> zoo.ModelCard:
    return CARDS[f"chenyaofo-{dataset}-{upstream}"]


_NO_SHARED = f"real CIFAR-100 slice not found at {SHARED_CIFAR100} (../shared is absent)"


@pytest.fixture(scope="module")
def real_cifar100():
    """The 916 real CIFAR-100 test images of ../shared (official prefix, read under trust-local), or None."""
    if not (SHARED_CIFAR100 / "cifar-100-python" / "test").exists():
        return None
    from cifarb.data.readers import load_cifar

    data = load_cifar("cifar100", root=SHARED_CIFAR100, trust_local=True)
    assert data.n_images == 916 and not data.verified
    return data


@pytest.fixture
def cifar100_test(real_cifar100):
    if real_cifar100 is None:
        pytest.skip(_NO_SHARED)
    return real_cifar100


def _normalised(images: np.ndarray, card: zoo.ModelCard) -> torch.Tensor:
    """The upstream input pipeline written out: ToTensor (RGB / 255, NCHW), then Normalize(mean, std)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(card.mean).view(1, 3, 1, 1)) / torch.tensor(card.std).view(1, 3, 1, 1)


# --- the card table -------------------------------------------------------------------------------


def test_cards_are_the_published_table():
    assert len(CARDS) == len(ROWS) == 38
    assert {(c.dataset, c.name.split("-", 2)[2]) for c in CARDS.values()} == {
        (ds, a) for ds in ("cifar10", "cifar100") for a in UPSTREAM}
    # namespaced: never one of the contract's akamaster names
    assert not set(CARDS) & {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}
    assert all(not name.startswith("resnet") for name in CARDS)
    for row in ROWS:
        card = _card(row["dataset"], row["arch"])
        # the release URL is the one the upstream code downloads, and its name carries the prefix
        assert card.url == LAYOUT["archs"][row["arch"]]["urls"][row["dataset"]]
        assert card.filename == card.url.rsplit("/", 1)[1] == f"{row['dataset']}_{row['arch']}-{card.sha256}.pt"
        assert card.sha256_is_prefix and len(card.sha256) == 8 and int(card.sha256, 16) >= 0
        assert "prefix" in card.describe() and "check_hash" in card.describe()
        assert (card.mean, card.std) == LOGGED_NORM[card.dataset]
        assert card.num_classes == {"cifar10": 10, "cifar100": 100}[card.dataset]
        assert card.reported_accuracy == pytest.approx(row["top1"] / 100, abs=1e-9)
        lo, hi = (0.90, 0.96) if card.dataset == "cifar10" else (0.67, 0.78)
        assert lo < card.reported_accuracy < hi
        assert card.arch in ARCHS and "BSD-3" in card.license
        assert set(card.citations) <= set(CITATIONS) and "chen2021cifarmodels" in card.citations
    prefixes = [c.sha256 for c in CARDS.values()]
    assert len(set(prefixes)) == len(prefixes)


def test_docs_list_every_card():
    text = (REPO / "docs" / "evaluation.md").read_text()
    for row in ROWS:
        assert f"`{row['sha256']}`, {row['top1']:.2f} %, {row['params_m']} M" in text, row


def test_cite_adds_the_project_and_the_architecture_paper(capsys):
    assert main(["cite", "chenyaofo-cifar100-repvgg_a0"]) == 0
    out = capsys.readouterr().out
    assert "@misc{chen2021cifarmodels," in out and "@inproceedings{ding2021repvgg," in out


def test_card_for_sha256_matches_by_prefix_only():
    card = _card("cifar100", "resnet20")
    assert zoo.card_for_sha256(card.sha256 + "0" * 56) is card
    assert zoo.card_for_sha256("0" + card.sha256[1:] + "0" * 56) is not card


def test_data_where_prints_path_prefix_and_url(capsys):
    name = "chenyaofo-cifar100-resnet20"
    assert main(["data", "where", name]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0].split()
    assert first == [str(zoo.default_weight_path(name)), "-", "sha256:23dac2f1",
                     "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/"
                     "cifar100_resnet20-23dac2f1.pt"]
    assert "checked by prefix" in out and "BSD-3" in out
    assert main(["data", "verify", name]) == 1
    assert capsys.readouterr().out.startswith("MISSING ")


# --- every architecture against the upstream layout ---------------------------------------------------


@pytest.mark.parametrize("upstream", UPSTREAM)
def test_architecture_matches_the_published_layout(upstream, real_cifar100):
    ref = LAYOUT["archs"][upstream]
    card = _card("cifar100", upstream)
    net = build_model(card.arch, num_classes=100)
    # keys and shapes, in order, are those of the released files
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == ref["keys"]
    n = sum(p.numel() for p in net.parameters())
    assert n == ref["n_params"]["cifar100"]
    # ... and equal the published figure at its precision (0.01 M)
    params = {r["dataset"]: r["params_m"] for r in ROWS if r["arch"] == upstream}
    assert f"{n / 1e6:.2f}" == params["cifar100"]

    # strict load of a state dict with exactly the published keys, then the upstream model's outputs
    state = LAYOUT_SCRIPT.layout_state(ref["keys"])
    zoo.check_fit(net, state, card.arch, "layout")
    net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        logits = net(LAYOUT_SCRIPT.layout_input())[0].double()
    expected = torch.tensor(ref["logits_cifar100"], dtype=torch.float64)
    assert torch.allclose(logits, expected, rtol=0, atol=1e-4 * expected.abs().max().item())
    assert logits.argmax().item() == expected.argmax().item()

    # a few real CIFAR-100 images, normalised as upstream does (at the end without ../shared)
    if real_cifar100 is not None:
        with torch.no_grad():
            out = net(_normalised(real_cifar100.images[:4], card))
        assert out.shape == (4, 100) and torch.isfinite(out).all()

    # CIFAR-10: same keys, the head's shapes as recorded, the published count
    net10 = build_model(_card("cifar10", upstream).arch, num_classes=10)
    shapes10 = {k: list(s) for k, s in ref["keys"]} | ref["cifar10_shapes"]
    assert {k: list(v.shape) for k, v in net10.state_dict().items()} == shapes10
    n10 = sum(p.numel() for p in net10.parameters())
    assert n10 == ref["n_params"]["cifar10"] and f"{n10 / 1e6:.2f}" == params["cifar10"]
    state10 = state | {k: torch.zeros(s) for k, s in ref["cifar10_shapes"].items()}
    net10.load_state_dict(state10, strict=True)
    with pytest.raises(CifarbError, match="shape mismatches"):
        zoo.check_fit(net10, state, card.arch, "layout")
    if real_cifar100 is None:
        pytest.skip(f"layout checks passed; the forward on real images did not run: {_NO_SHARED}")


def test_a_layout_with_a_missing_or_renamed_key_does_not_fit():
    ref = LAYOUT["archs"]["resnet20"]
    net = build_model("resnet20_b", num_classes=100)
    state = LAYOUT_SCRIPT.layout_state(ref["keys"])
    state.pop("layer2.0.downsample.0.weight")
    with pytest.raises(CifarbError, match="1 missing keys"):
        zoo.check_fit(net, state, "resnet20_b", "layout")
    # the akamaster option-A net has no projection shortcuts and calls its head `linear`
    with pytest.raises(CifarbError, match="unexpected keys"):
        zoo.check_fit(build_model("resnet20", num_classes=100), LAYOUT_SCRIPT.layout_state(ref["keys"]),
                      "resnet20", "layout")


# --- prefix-verified weights through the zoo -------------------------------------------------------


def _weights_file(folder: Path, card: zoo.ModelCard, upstream: str, monkeypatch) -> tuple[Path, dict]:
    """A checkpoint in the released layout under the card's file name; the card's prefix made to match it."""
    state = LAYOUT_SCRIPT.layout_state(LAYOUT["archs"][upstream]["keys"])
    folder.mkdir(exist_ok=True)
    path = folder / card.filename
    torch.save(state, path)
    patched = dataclasses.replace(card, sha256=_sha(path.read_bytes())[:8])
    monkeypatch.setitem(zoo.ZOO, card.name, patched)
    return path, state


def test_weights_in_cifarb_models_are_verified_by_prefix(tmp_path, monkeypatch):
    card = _card("cifar100", "resnet20")
    path, state = _weights_file(tmp_path / "models", card, "resnet20", monkeypatch)
    monkeypatch.setenv("CIFARB_MODELS", str(tmp_path / "models"))
    loaded = zoo.resolve_model(card.name, num_classes=100)
    assert loaded.source == str(path) and loaded.arch == "resnet20_b" and loaded.card.name == card.name
    assert (loaded.mean, loaded.std) == LOGGED_NORM["cifar100"]
    assert loaded.sha256 == _sha(path.read_bytes())
    assert torch.equal(loaded.module.fc.weight, state["fc.weight"])
    # the same file given by path is recognised as the card (prefix), arch and normalisation included
    by_path = zoo.resolve_model(str(path))
    assert by_path.card.name == card.name and by_path.mean == card.mean
    with pytest.raises(CifarbError, match="predicts 100 classes"):
        zoo.resolve_model(card.name, num_classes=10)
    # other bytes under the same name are refused
    torch.save(LAYOUT_SCRIPT.layout_state(LAYOUT["archs"]["resnet20"]["keys"], seed=1), path)
    with pytest.raises(CifarbError, match=f"starting with {zoo.ZOO[card.name].sha256}"):
        zoo.resolve_model(card.name)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        data = self.server.files.get(self.path.rsplit("/", 1)[1])
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_fetch_from_a_local_server_checks_the_prefix(server, tmp_path, monkeypatch, capsys):
    card = _card("cifar100", "mobilenetv2_x0_5")
    built, state = _weights_file(tmp_path / "src", card, "mobilenetv2_x0_5", monkeypatch)
    good = built.read_bytes()
    published = dataclasses.replace(zoo.ZOO[card.name], url=f"{server.base}/releases/{card.filename}")
    monkeypatch.setitem(zoo.ZOO, card.name, published)
    target = zoo.default_weight_path(card.name)

    # a file whose sha256 does not start with the prefix is discarded and nothing is placed
    server.files[card.filename] = good[:-1] + bytes([good[-1] ^ 1])
    assert main(["data", "fetch", card.name, "--no-progress"]) == 1
    assert "expected " + published.sha256 in capsys.readouterr().err
    assert not target.exists() and not list(target.parent.glob(f"**/{card.filename}*"))

    server.files[card.filename] = good
    assert main(["data", "fetch", card.name, "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"OK {target}"
    assert target.read_bytes() == good
    assert main(["data", "verify", card.name]) == 0
    loaded = zoo.resolve_model(card.name, num_classes=100)
    assert loaded.source == str(target)
    assert torch.equal(loaded.module.classifier[1].weight, state["classifier.1.weight"])


# --- eval on the 916 real CIFAR-100 images ----------------------------------------------------------


# two cheap architectures (the other 17 see 4 real images above): a full pass costs seconds per model
@pytest.mark.parametrize("upstream", ["resnet20", "shufflenetv2_x0_5"])
def test_eval_cifar100_b_on_the_real_images(upstream, cifar100_test, tmp_path, monkeypatch):
    card = _card("cifar100", upstream)
    path, state = _weights_file(tmp_path / "models", card, upstream, monkeypatch)
    monkeypatch.setenv("CIFARB_MODELS", str(tmp_path / "models"))
    out = tmp_path / "run"
    argv = ["eval", "--model", card.name, "--dataset", "cifar100-b", "--root", str(SHARED_CIFAR100),
            "--trust-local", "--bootstrap", "0", "--no-progress", "--json", str(tmp_path / "r.json"),
            "--out", str(out), "--save-logits"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["dataset"] == "cifar100-b" and result["n_images"] == 916 and result["n_official"] == 10000
    assert result["data_verified"] is False
    assert result["provenance"]["model_sha256"] == _sha(path.read_bytes())
    assert sum(c["n"] for c in result["cells"]) == 916

    preds = pd.read_parquet(out / "predictions" / "cifar100-b.parquet")
    assert preds["index"].tolist() == list(range(916))
    saved = np.stack(preds["logits"].to_numpy())
    assert np.array_equal(preds["prediction"].to_numpy(), saved.argmax(1))
    assert result["accuracy"] == pytest.approx(float((saved.argmax(1) == cifar100_test.labels).mean()))

    # the logits equal a forward written out here (strict load, upstream normalisation) on the first 128
    net = build_model(card.arch, num_classes=100)
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = net.eval()(_normalised(cifar100_test.images[:128], card)).numpy()
    assert np.allclose(saved[:128], logits, rtol=0, atol=1e-4 * np.abs(logits).max())
