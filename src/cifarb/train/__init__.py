"""Training: `train(config) -> Path` runs one classifier training (resumable, DDP under torchrun)."""

from cifarb.train.api import train
from cifarb.train.config import TrainConfig

__all__ = ["TrainConfig", "train"]
