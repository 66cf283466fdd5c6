"""Per-sample torchvision v2 policies: AutoAugment (CIFAR-10), RandAugment, TrivialAugmentWide, AugMix (+ JSD)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cifarb.augment.base import SampleAugmentation
from cifarb.errors import CifarbError

__all__ = ["TorchvisionPolicy", "AugMix", "jsd_loss"]


class TorchvisionPolicy(SampleAugmentation):
    """Wraps one torchvision.transforms.v2 policy; it draws from torch's global RNG, seeded by the pipeline."""

    def __init__(self, name: str, transform: Any, params: dict[str, Any]) -> None:
        self.name = name
        self.transform = transform
        self.params = params

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.transform(image)

    def config(self) -> dict[str, Any]:
        return dict(self.params)


def jsd_loss(
    logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor, weight: float = 12.0
) -> torch.Tensor:
    """AugMix's Jensen-Shannon consistency loss (Hendrycks et al. 2020), `weight` x mean KL to the mixture.

    JS(p1, p2, p3) = (1/3) sum_i KL(p_i || M), M = (p1 + p2 + p3) / 3, averaged over the batch; the mixture
    is clamped at 1e-7 before the log, as in the reference implementation.
    """
    probs = [F.softmax(z.float(), dim=1) for z in (logits_clean, logits_aug1, logits_aug2)]
    log_m = torch.clamp((probs[0] + probs[1] + probs[2]) / 3.0, 1e-7, 1.0).log()
    kl = sum(F.kl_div(log_m, p, reduction="batchmean") for p in probs)
    return weight * kl / 3.0


class AugMix(SampleAugmentation):
    """`augmix`: torchvision v2 AugMix; with JSD it yields (clean, augmix, augmix) stacked as (3, C, H, W)."""

    name = "augmix"
    # Last in the sample stage: the clean view must be the image after every other per-sample op.
    priority = 90

    def __init__(
        self,
        *,
        jsd: bool = True,
        jsd_weight: float = 12.0,
        severity: int = 3,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = False,
    ) -> None:
        from torchvision.transforms import v2

        self.jsd, self.jsd_weight = bool(jsd), float(jsd_weight)
        self.params = {
            "severity": int(severity),
            "mixture_width": int(width),
            "chain_depth": int(depth),
            "alpha": float(alpha),
            "all_ops": bool(all_ops),
        }
        self.transform = v2.AugMix(**self.params)
        self.views = 3 if self.jsd else 1

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if not self.jsd:
            return self.transform(image)
        return torch.stack([image, self.transform(image), self.transform(image)])

    def consistency_loss(self, logits_per_view: list[torch.Tensor]) -> torch.Tensor:
        return jsd_loss(*logits_per_view, weight=self.jsd_weight)

    def config(self) -> dict[str, Any]:
        p = self.params
        return {
            "augmix_jsd": self.jsd,
            "augmix_jsd_weight": self.jsd_weight,
            "augmix_severity": p["severity"],
            "augmix_width": p["mixture_width"],
            "augmix_depth": p["chain_depth"],
            "augmix_alpha": p["alpha"],
            "augmix_all_ops": p["all_ops"],
        }


def make_autoaugment(num_classes: int, **opts: Any) -> TorchvisionPolicy:
    from torchvision.transforms import v2

    policies = {p.name.lower(): p for p in v2.AutoAugmentPolicy}
    name = str(opts.get("autoaugment_policy", "cifar10")).lower()
    if name not in policies:
        raise CifarbError(f"unknown autoaugment_policy {name!r}; choose one of: {', '.join(policies)}")
    return TorchvisionPolicy("autoaugment", v2.AutoAugment(policies[name]), {"autoaugment_policy": name})


def make_randaugment(num_classes: int, **opts: Any) -> TorchvisionPolicy:
    from torchvision.transforms import v2

    n, m = int(opts.get("randaugment_num_ops", 2)), int(opts.get("randaugment_magnitude", 9))
    return TorchvisionPolicy(
        "randaugment",
        v2.RandAugment(num_ops=n, magnitude=m),
        {"randaugment_num_ops": n, "randaugment_magnitude": m},
    )


def make_trivialaugment(num_classes: int, **opts: Any) -> TorchvisionPolicy:
    from torchvision.transforms import v2

    return TorchvisionPolicy("trivialaugment", v2.TrivialAugmentWide(), {})


def make_augmix(num_classes: int, **opts: Any) -> AugMix:
    return AugMix(
        jsd=opts.get("augmix_jsd", True),
        jsd_weight=opts.get("augmix_jsd_weight", 12.0),
        severity=opts.get("augmix_severity", 3),
        width=opts.get("augmix_width", 3),
        depth=opts.get("augmix_depth", -1),
        alpha=opts.get("augmix_alpha", 1.0),
        all_ops=opts.get("augmix_all_ops", False),
    )
