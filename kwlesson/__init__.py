"""kwlesson: a course package that teaches keyword spotting with TensorFlow.

The package is flat, one module per stage of the lesson, in lesson order (the README maps them).
Importing ``kwlesson`` is cheap: TensorFlow loads only when a module that needs it is imported.

"The seed" in the docstrings is TensorFlow's speech_commands example (train.py, freeze.py,
label_wav.py, RecognizeCommands, test_streaming_accuracy) and its tutorial, which the course
rebuilds; an argument called ``seed`` is always a random seed.

>>> import kwlesson as kw
>>> kw.setup(seed=0)  # doctest: +SKIP
"""

from kwlesson.config import data_home, pick, quick_mode, set_seed, setup, shared_datasets_dir
from kwlesson.version import __version__


def quick_model(**overrides):
    """The course's cached quick model (trained once on the offline dataset, then loaded).

    A thin wrapper so ``kw.quick_model()`` works without loading TensorFlow at import time;
    see :func:`kwlesson.training.quick_model`.
    """
    from kwlesson.training import quick_model as _quick_model

    return _quick_model(**overrides)


__all__ = ["data_home", "pick", "quick_mode", "quick_model", "set_seed", "setup",
           "shared_datasets_dir", "__version__"]
