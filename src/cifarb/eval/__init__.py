"""Evaluation: batched inference -> predictions -> subgroup metrics and the result JSON.

`evaluate(model, dataset, ...)` and `predict(module, images, mean, std, ...)` are the public API
(docs/architecture.md); torch is imported only when they run.
"""

from cifarb.eval.evaluate import EVAL_DATASETS, evaluate, evaluate_corruptions, evaluate_imageset, predict

__all__ = ["EVAL_DATASETS", "evaluate", "evaluate_corruptions", "evaluate_imageset", "predict"]
