"""Convert the published ResNet20 checkpoint (torch pickle) into the bundled safetensors asset.

Usage: python scripts/convert_resnet20.py [SOURCE.th] [--out src/cifarb/models/assets]

The source is akamaster/pytorch_resnet_cifar10's `resnet20-12fca82f.th` (BSD-2; default
../shared/models/). Its sha256 is checked against the published value before anything is unpickled.
The tensors are stored unchanged, with the DataParallel `module.` prefix removed; the source's sha256
and reported accuracy go into the safetensors metadata, and the licence is copied beside the asset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "models" / "resnet20-12fca82f.th"
DEFAULT_OUT = REPO / "src" / "cifarb" / "models" / "assets"
SOURCE_SHA256 = "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"
SOURCE_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    digest = sha256_of(args.source)
    if digest != SOURCE_SHA256:
        print(f"{args.source}: sha256 {digest} is not the published {SOURCE_SHA256}; refusing to unpickle it",
              file=sys.stderr)
        return 1

    import torch
    from safetensors.torch import save_file

    checkpoint = torch.load(args.source, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    tensors = {k.removeprefix("module."): v.detach().contiguous().clone() for k, v in state.items()}
    # One metadata entry holding sorted JSON: safetensors stores metadata as a hash map, so several
    # entries would be written in a random order and the asset's sha256 would change on every run.
    info = {
        "arch": "resnet20",
        "source_file": args.source.name,
        "source_sha256": SOURCE_SHA256,
        "source_url": SOURCE_URL,
        "source_best_prec1": repr(float(checkpoint.get("best_prec1", float("nan")))),
        "license": "BSD-2-Clause, Copyright (c) 2018, Yerlan Idelbayev (see LICENSE.BSD-2 beside this file)",
    }
    metadata = {"cifarb": json.dumps(info, sort_keys=True)}
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "resnet20.safetensors"
    tmp = target.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)
    tmp.replace(target)
    licence = args.source.parent / "LICENSE.BSD-2"
    if licence.exists():
        shutil.copyfile(licence, args.out / "LICENSE.BSD-2")
    print(f"wrote {target} ({len(tensors)} tensors) sha256 {sha256_of(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
