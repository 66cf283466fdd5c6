"""The model zoo's public names in one place: cards, weight look-up, checkpoint reading and `resolve_model`.

Each job lives in its own module; this one re-exports them so `cifarb.models.zoo.X` keeps working:
- `cards.py`: `ModelCard` and `ZOO`, read from the card tables in `models/assets/*_cards.toml`;
- `weights.py`: where zoo weights are looked for and how they are checked (`find_weights`);
- `fetch.py`: downloading a card's weights into the cache (`fetch_weights`);
- `checkpoint.py`: reading checkpoint files safely (`load_state_dict`, weights-only) and `check_fit`;
- `loading.py`: `resolve_model(spec, ...) -> LoadedModel` for every kind of model SPEC.
Importing it is cheap (no torch); `resolve_model` imports torch when it loads weights.
"""

from __future__ import annotations

from cifarb._hashing import sha256_file
from cifarb.models.cards import IMAGENET_MEAN, IMAGENET_STD, ZOO, ModelCard, card_for_sha256, get_card
from cifarb.models.checkpoint import check_fit, load_state_dict
from cifarb.models.loading import LoadedModel, resolve_model
from cifarb.models.weights import (
    bundled_path,
    default_weight_path,
    find_weights,
    models_cache_dir,
    weight_candidates,
    weight_status,
)

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "ZOO", "LoadedModel", "ModelCard", "bundled_path", "card_for_sha256",
    "check_fit", "default_weight_path", "find_weights", "get_card", "load_state_dict", "models_cache_dir",
    "resolve_model", "sha256_file", "weight_candidates", "weight_status",
]
