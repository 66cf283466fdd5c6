"""Record the published state-dict layout of chenyaofo/pytorch-cifar-models, by running its own code.

Usage: python scripts/chenyaofo_layout.py UPSTREAM_CHECKOUT [--out tests/fixtures_zoo/chenyaofo_layout.json]

UPSTREAM_CHECKOUT is a checkout of github.com/chenyaofo/pytorch-cifar-models (BSD-3; the file records the
commit given with --commit). Its loaders call `model.load_state_dict(state_dict)` strictly on the released
`.pt` files, so the key names and shapes of its models *are* the released files' layout. For every
architecture this writes, from the upstream models only:
- the CIFAR-100 keys with their shapes (state-dict order) and the keys whose shape differs for CIFAR-10;
- the exact parameter count for CIFAR-10 and CIFAR-100;
- the release URLs the upstream code downloads (their names carry the sha256 prefix);
- the CIFAR-100 logits of one fixed input, computed in float64 from `layout_state(...)` weights (which
  depend on the layout alone), so cifarb's own implementation can be checked output for output.
Nothing of the upstream code is copied into cifarb; tests read only this JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures_zoo" / "chenyaofo_layout.json"
# upstream module -> architecture names, in the README's order
FAMILIES = {
    "resnet": ("resnet20", "resnet32", "resnet44", "resnet56"),
    "vgg": ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"),
    "mobilenetv2": ("mobilenetv2_x0_5", "mobilenetv2_x0_75", "mobilenetv2_x1_0", "mobilenetv2_x1_4"),
    "shufflenetv2": ("shufflenetv2_x0_5", "shufflenetv2_x1_0", "shufflenetv2_x1_5", "shufflenetv2_x2_0"),
    "repvgg": ("repvgg_a0", "repvgg_a1", "repvgg_a2"),
}
SEED = 20260101


def layout_state(keys: list[list[Any]], seed: int = SEED) -> dict[str, Any]:
    """Deterministic float32 tensors for a layout [[name, shape], ...], independent of any model code.

    He-scaled conv/linear weights, BN affine near (1, 0) and running statistics near (0, 1), so outputs
    stay finite through deep nets and a wrongly wired layer changes them.
    """
    import torch

    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in keys:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros(shape, dtype=torch.int64)
            continue
        # float32 draws: a 27 M-parameter layout takes a fraction of a second
        normal = rng.standard_normal(shape, dtype=np.float32)
        if name.endswith("running_var"):
            value = 0.5 + rng.random(shape, dtype=np.float32)
        elif name.endswith("running_mean") or name.endswith("bias"):
            value = 0.1 * normal
        elif len(shape) >= 2:
            value = normal * np.float32(math.sqrt(2.0 / math.prod(shape[1:])))
        else:  # BN weight
            value = 1.0 + 0.1 * normal
        state[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return state


def layout_input(seed: int = SEED) -> Any:
    """The fixed (1, 3, 32, 32) float32 input the recorded logits belong to."""
    import torch

    return torch.from_numpy(np.random.default_rng(seed + 1).standard_normal((1, 3, 32, 32), dtype=np.float32))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", type=Path, help="checkout of chenyaofo/pytorch-cifar-models")
    parser.add_argument("--commit", required=True, help="the upstream commit the checkout is at")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import torch

    sys.path.insert(0, str(args.upstream.resolve()))
    archs: dict[str, Any] = {}
    for family, names in FAMILIES.items():
        module = importlib.import_module(f"pytorch_cifar_models.{family}")
        for arch in names:
            nets = {ds: getattr(module, f"{ds}_{arch}")() for ds in ("cifar10", "cifar100")}
            layouts = {ds: [[k, list(v.shape)] for k, v in net.state_dict().items()] for ds, net in nets.items()}
            if [k for k, _ in layouts["cifar10"]] != [k for k, _ in layouts["cifar100"]]:
                raise SystemExit(f"{arch}: CIFAR-10 and CIFAR-100 keys differ")
            cifar10_shapes = {k: s for (k, s), (_, s100) in zip(layouts["cifar10"], layouts["cifar100"])
                              if s != s100}
            net = nets["cifar100"].eval()
            net.load_state_dict(layout_state(layouts["cifar100"]), strict=True)
            with torch.no_grad():  # in float64, so the recorded logits carry no float32 rounding
                logits = net.double()(layout_input().double())[0].tolist()
            archs[arch] = {
                "module": f"pytorch_cifar_models/{family}.py",
                "urls": {ds: getattr(module, f"{ds}_pretrained_weight_urls")[arch] for ds in nets},
                "n_params": {ds: sum(p.numel() for p in n.parameters()) for ds, n in nets.items()},
                "cifar10_shapes": cifar10_shapes,
                "logits_cifar100": [float(f"{v:.12g}") for v in logits],
                "keys": layouts["cifar100"],
            }
            print(f"{arch}: {len(layouts['cifar100'])} keys, {archs[arch]['n_params']}")
    payload = {
        "source": "https://github.com/chenyaofo/pytorch-cifar-models",
        "commit": args.commit,
        "license": "BSD-3-Clause, Copyright (c) 2021, chenyaofo",
        "made_by": "scripts/chenyaofo_layout.py",
        "seed": SEED,
        "torch": torch.__version__,
        "archs": archs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, separators=(",", ":"))
    # one architecture per line keeps diffs readable
    text = text.replace(',"archs":{"', ',"archs":{\n"').replace('},"', '},\n"')
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
