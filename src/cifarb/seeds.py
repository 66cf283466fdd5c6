"""Every seed of a run, derived from (run seed, purpose) through one splitmix64 chain; no torch, no numpy.

A run has one seed (`--seed`). Each random purpose gets its own stream from it with
`derive_seed(run_seed, purpose, *keys)`, so two purposes never share draws and nearby keys (epoch 7 vs
8, image 7 vs 8) give unrelated seeds. The integer tags below are part of the results: changing one
changes every run that uses it, so a tag is added, never renumbered. The streams that predate this
table (augmentation, shuffling, the per-epoch torch seed, FlowAug) keep the tags they always had.

    >>> derive_seed(0, "eval-ci")
    5925726403892485592

The values are the same on every platform and in every process (no `hash()`), which is what makes
DataLoader workers, DDP ranks and resumed runs reproducible. One seed is not derived: a classifier's
initial weights come from `torch.manual_seed(run seed)`, as building the model in a notebook gives.
"""

from __future__ import annotations

__all__ = ["PURPOSES", "chain_keys", "derive_seed", "mix_keys", "purpose_tag"]

_MASK64 = (1 << 64) - 1

# purpose -> tag mixed in after the run seed; keys after the tag say which draw of that purpose it is
PURPOSES: dict[str, int] = {
    "augment-sample": 1,  # per-image augmentation: (epoch, dataset index)
    "augment-batch": 2,  # per-step batch/mix augmentation on the CPU generator: (epoch, step, rank)
    "shuffle": 0x5EED_0001,  # the epoch's permutation of the training set: (epoch,)
    "train-epoch": 0x5EED_0002,  # torch's global RNG at the start of each epoch (dropout, ...): (epoch, rank)
    "eval-ci": 0x5EED_0003,  # bootstrap, noise floor and permutation test of a run's final evaluation
    "flow-epoch": 0x5EED_0004,  # flow training: the epoch's order and flips: (epoch,)
    "flowaug": 0xF10A,  # FlowAug's offline pool: (variant, first image of the chunk)
}


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def chain_keys(*keys: int, state: int = 0) -> int:
    """The 64-bit splitmix64 chain state after absorbing `keys`; `mix_keys` is this shifted to 63 bits.

    Exposed so hot loops can absorb a constant prefix once: mix_keys(a, b, i) ==
    chain_keys(i, state=chain_keys(a, b)) >> 1.
    """
    z = state
    for k in keys:
        z = _splitmix64(z ^ (int(k) & _MASK64))
    return z


def mix_keys(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (the chain `derive_seed` runs after naming the purpose)."""
    return chain_keys(*keys) >> 1


def purpose_tag(purpose: str) -> int:
    """The integer tag of a named purpose; an unknown name is a programming error, so it raises KeyError."""
    try:
        return PURPOSES[purpose]
    except KeyError:
        raise KeyError(f"unknown seed purpose {purpose!r}; known: {', '.join(PURPOSES)}") from None


def derive_seed(run_seed: int, purpose: str, *keys: int) -> int:
    """The 63-bit seed of one `purpose` (a key of PURPOSES) of the run seeded `run_seed`.

    `keys` pick one draw within the purpose, e.g. `derive_seed(seed, "shuffle", epoch)`. Equal to
    `mix_keys(run_seed, PURPOSES[purpose], *keys)`, the chain the keyed generators of `cifarb.augment` use.
    """
    return mix_keys(int(run_seed), purpose_tag(purpose), *keys)
