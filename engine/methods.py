"""The pruning vocabulary: the methods and scores a run can name, and how results name them.
Free of torch, so the CLI and the app build their choices from it at start-up."""

from __future__ import annotations

INTERNAL = "internal"  # block-internal channels only: residual streams, stem, classifier whole
METHODS = ("layerwise", "global", "structured", "coupled", INTERNAL)
# The methods that remove whole channels (a filter with its BatchNorm channel): their levels can
# be taken out of the network (engine.pruning.slim, engine.pruning.graph); the others only mask
# weights.
CHANNEL_METHODS = ("structured", "coupled", INTERNAL)
GROUP_SCORE = "group"  # channels only: every member of a channel's dependency group counts
SCORES = (
    "l1",
    "random",
    "gradient",
    GROUP_SCORE,
)  # what ranks the weights: engine.pruning.scores, one class each


def score_problem(method: str, score: str) -> str:
    """Why `score` cannot rank `method`'s units ('' when it can): the group score ranks
    channels, so it needs a channel method."""
    if score == GROUP_SCORE and method not in CHANNEL_METHODS:
        return f"group ranks whole channels: use it with --method {', '.join(CHANNEL_METHODS)}"
    return ""


# What decides a level's masks besides the checkpoint and the level: exporting or fine-tuning a
# sweep's level copies exactly these from the sweep's config (the seed draws a random score).
MASK_FIELDS = ("method", "score", "seed", "include_classifier", "min_density")


def mask_settings(config: object) -> dict[str, object]:
    """`config`'s MASK_FIELDS, to build another run's config that prunes identically."""
    return {name: getattr(config, name) for name in MASK_FIELDS}


def named_score(score: str) -> bool:
    """Whether results must name `score`: every score but the default l1 (an old run without one
    is l1)."""
    return score not in ("", SCORES[0])


def score_words(score: str) -> str:
    """'random score' for a score results must name, '' for l1."""
    return f"{score} score" if named_score(score) else ""


def pruning_label(method: str, score: str = "l1") -> str:
    """How results name a pruning: 'layerwise', or 'layerwise, random' for a score not l1."""
    return f"{method}, {score}" if named_score(score) else method
