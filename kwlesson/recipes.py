"""Named training recipes: sets of :class:`kwlesson.runs.TrainConfig` fields that were
measured to work, so nobody has to copy flags (``kwlesson train --recipe NAME``).

Plain data, no TensorFlow: benchmarks and the command line read it before anything heavy loads.
"""

from __future__ import annotations

from typing import Any

__all__ = ["QUICK_RECIPE", "RECIPES", "recipe"]

#: The quick recipe: what ``kwlesson train`` uses on the offline dataset in quick mode, and what
#: :func:`quick_model` trains for lessons that need a trained model. TC-ResNet8 on MFCC frames
#: every 20 ms (49 x 40, the seed's micro model's stride), Adam, the louder background noise of
#: the real-speech recipe: about 90% on the offline test split in under three minutes on a
#: 2-core laptop (benchmarks/bench_quick_recipe.py; RESULTS.md, "Quick-recipe candidates").
#: Full mode keeps the seed's defaults.
QUICK_RECIPE: dict[str, Any] = {
    "model_architecture": "tc_resnet",
    "window_stride_ms": 20.0,
    "how_many_training_steps": "1100,400",
    "learning_rate": "0.005,0.001",
    "optimizer": "adam",
    "background_volume": 0.3,
    "eval_step_interval": 400,
    "save_step_interval": 400,
}


#: Named recipes: ``kwlesson train --recipe NAME`` (flags given on the command line win).
#: ``quick`` is :data:`QUICK_RECIPE`; ``real_speech`` is the best recipe measured for the real
#: Speech Commands (benchmarks/bench_real_speech.py, its ``best``: ds_cnn, 1,500 steps, louder
#: background noise; see benchmarks/RESULTS.md for its accuracy on speakers it never heard);
#: ``micro_speech`` the yes/no model for TensorFlow Lite Micro's micro_speech example.
RECIPES: dict[str, dict[str, Any]] = {
    "quick": QUICK_RECIPE,
    "real_speech": {
        "model_architecture": "ds_cnn",
        "how_many_training_steps": "1000,500",
        "learning_rate": "0.005,0.001",
        "optimizer": "adam",
        "background_volume": 0.3,
        "eval_step_interval": 250,
    },
    # micro_speech: the TinyML course's model for a microcontroller, "yes" and "no" (4 labels,
    # as TensorFlow Lite Micro's micro_speech example) on its own front end, with the course's
    # 25% silence and 25% unknown; its int8 model drops into the example (export's
    # micro_speech/ folder). Steps and optimizer as the quick recipe.
    "micro_speech": {
        "wanted_words": "yes,no",
        "model_architecture": "tiny_conv",
        "preprocess": "micro",
        "window_size_ms": 30.0,
        "window_stride_ms": 20.0,
        "feature_bin_count": 40,
        "silence_percentage": 25.0,
        "unknown_percentage": 25.0,
        "how_many_training_steps": "1100,400",
        "learning_rate": "0.005,0.001",
        "optimizer": "adam",
        "background_volume": 0.3,
        "eval_step_interval": 500,
        "save_step_interval": 500,
    },
}


def recipe(name: str) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of a named recipe (a copy), or a ValueError naming the
    recipes there are."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid names: {', '.join(RECIPES)}")
    return dict(RECIPES[name])
