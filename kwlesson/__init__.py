"""kwlesson: a course package that teaches keyword spotting with TensorFlow.

The package is flat, one module per stage of the lesson (audio, features, data, synth, models,
training, evaluation, export, streaming, widgets, plots, checks, cli). Importing ``kwlesson``
is cheap: TensorFlow loads only when a module that needs it is imported.

>>> import kwlesson as kw
>>> kw.setup(seed=0)  # doctest: +SKIP
"""

from kwlesson.config import data_home, pick, quick_mode, set_seed, setup, shared_datasets_dir

__version__ = "0.1.0"

__all__ = ["data_home", "pick", "quick_mode", "set_seed", "setup", "shared_datasets_dir", "__version__"]
