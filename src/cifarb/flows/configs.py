"""Flow configurations: the `tiny`, `small` and `paper` presets (TOML files in flows/configs/) and custom TOML files."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from cifarb.errors import CifarbError

PRESETS: tuple[str, ...] = ("tiny", "small", "paper")


@dataclass(frozen=True)
class FlowConfig:
    """Architecture and training hyperparameters of one flow (all recorded in the run manifest)."""

    name: str = "custom"
    # architecture
    levels: int = 3  # multi-scale levels (L); each starts with a squeeze, all but the last end with a split
    steps: int = 8  # flow steps per level (K)
    hidden: int = 128  # hidden channels of each coupling network
    z_dim: int = 32  # size of the global latent z
    enc_channels: int = 32  # width of the global encoder
    image_size: int = 32
    in_channels: int = 3
    n_bits: int = 8
    # training
    batch_size: int = 64
    test_batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 100
    epochs: int = 10
    grad_clip: float = 50.0  # max gradient norm
    hflip: bool = True  # random horizontal flips of training images
    kl_weight: float = 1.0  # weight of KL(q(z|x) || p(z)) in the training loss; test bpd always uses 1
    free_bits: float = 0.0  # nats per z dimension below which the training KL is not penalised
    kl_warmup_steps: int = 0  # the KL weight ramps linearly from 0 to kl_weight over these steps
    # Auxiliary thumbnail term (training only): z must also explain an aux_size x aux_size average-pooled
    # copy of the image under N(linear(z), aux_std^2). Anchors z to global colour layout; 0 turns it off.
    aux_weight: float = 0.0
    prior_lr_mult: float = 10.0  # the 2*z_dim prior parameters learn this much faster, to track q(z|x)
    aux_size: int = 4
    aux_std: float = 0.05
    seed: int = 0
    train_limit: int = 0  # use only the first N training images (0: all); for quick experiments and tests
    test_limit: int = 0  # evaluate test bpd on the first N test images (0: all)
    grid_n: int = 16  # samples and reconstructions shown in each epoch's PNG grid
    grid_temperature: float = 0.7

    def __post_init__(self) -> None:
        from cifarb.runs.rundir import is_plain_name

        if not is_plain_name(self.name):  # it names the run folder runs/<stamp>-flow-<name>-s<seed>
            raise CifarbError(f"flow config name {self.name!r} must be a plain name (no '/', '..' or leading '.')")
        for key in ("levels", "steps", "hidden", "z_dim", "enc_channels", "image_size", "in_channels",
                    "n_bits", "batch_size", "test_batch_size", "epochs", "grid_n"):
            if getattr(self, key) <= 0:
                raise CifarbError(f"flow config {self.name!r}: {key} must be positive, got {getattr(self, key)}")
        for key in ("lr", "grad_clip", "grid_temperature", "aux_std", "prior_lr_mult"):
            if not getattr(self, key) > 0:
                raise CifarbError(f"flow config {self.name!r}: {key} must be positive, got {getattr(self, key)}")
        for key in ("warmup_steps", "kl_weight", "free_bits", "kl_warmup_steps", "train_limit", "test_limit",
                    "aux_weight"):
            if getattr(self, key) < 0:
                raise CifarbError(f"flow config {self.name!r}: {key} must be >= 0, got {getattr(self, key)}")
        if self.aux_size <= 0 or self.image_size % self.aux_size:
            raise CifarbError(f"flow config {self.name!r}: aux_size must divide image_size {self.image_size}")
        if self.image_size % (2**self.levels):
            raise CifarbError(
                f"flow config {self.name!r}: image_size {self.image_size} must be divisible by 2**levels "
                f"({2**self.levels}); use fewer levels"
            )

    @property
    def n_bins(self) -> int:
        return 2**self.n_bits

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> FlowConfig:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in fields(FlowConfig)}


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> FlowConfig:
    """Build a FlowConfig from plain values, refusing unknown keys and wrong types with the source named."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            raise CifarbError(
                f"{source}: unknown flow config key {key!r}; known keys: {', '.join(sorted(_FIELDS))}"
            )
        want = _FIELDS[key].type
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[want]
        if not ok:
            raise CifarbError(f"{source}: flow config key {key!r} must be a {want}, got {value!r}")
        values[key] = float(value) if want == "float" else value
    return FlowConfig(**values)


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CifarbError(f"{source} is not valid TOML ({exc}); fix the file") from None
    # Either flat keys or a [flow] table.
    if "flow" in data and isinstance(data["flow"], dict):
        extra = sorted(k for k in data if k != "flow")
        if extra:
            raise CifarbError(f"{source}: keys {extra} outside the [flow] table; move them into it")
        data = data["flow"]
    return data


def preset(name: str) -> FlowConfig:
    """One of the bundled presets (`tiny`, `small`, `paper`)."""
    if name not in PRESETS:
        raise CifarbError(f"unknown flow config {name!r}; choose one of {', '.join(PRESETS)} or a FILE.toml")
    text = resources.files("cifarb.flows").joinpath("configs", f"{name}.toml").read_text(encoding="utf-8")
    return config_from_dict(_read_toml(text, f"{name}.toml"), f"{name}.toml")


def load_config(spec: str | Path) -> FlowConfig:
    """A preset name or a TOML file. A file may say `base = "small"` and override any key of that preset."""
    if isinstance(spec, str) and spec in PRESETS:
        return preset(spec)
    path = Path(spec)
    if not path.exists():
        raise CifarbError(f"flow config {spec}: no such preset or file; use one of {', '.join(PRESETS)} or a FILE.toml")
    if path.is_dir():
        raise CifarbError(f"flow config {path} is a directory; give a TOML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CifarbError(f"cannot read flow config {path} ({exc}); check the file") from None
    data = dict(_read_toml(text, str(path)))
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or base not in PRESETS:
            raise CifarbError(f"{path}: base must be one of {', '.join(PRESETS)}, got {base!r}")
        merged = preset(base).to_dict()
        merged["name"] = path.stem
        merged.update(data)
        data = merged
    data.setdefault("name", path.stem)
    return config_from_dict(data, str(path))
