"""Where data lives, quick versus full mode, and the one setup call each notebook makes.

Introduced in notebook 00.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Environment variable that switches every notebook and default to the full-size course.
MODE_ENV = "KWLESSON_MODE"
#: Environment variable that moves the data/cache folder (default ``~/.cache/kwlesson``).
HOME_ENV = "KWLESSON_HOME"
#: Environment variable naming the folder with the real clips
#: (``speech_commands_test_set_v0.02_dev`` and ``background_noise``); default
#: ``../shared/datasets`` next to the project root.
SHARED_ENV = "KWLESSON_SHARED_DATASETS"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: Where the seed's defaults (``/tmp/speech_commands_train`` and the like) live; not on Windows.
SEED_TMP = Path("/tmp")
_moved: set[str] = set()


def seed_path(path: str) -> str:
    """A seed default under ``/tmp/`` as it is where ``/tmp`` exists; elsewhere (Windows) the
    same path in the system's temporary folder, said once. Other paths are returned unchanged.

    >>> seed_path("/tmp/speech_commands_train")  # on Linux and macOS  # doctest: +SKIP
    '/tmp/speech_commands_train'
    """
    import sys
    import tempfile

    text = os.fspath(path)
    if not text.replace("\\", "/").startswith("/tmp/") or SEED_TMP.is_dir():
        return text
    moved = str(Path(tempfile.gettempdir(), *Path(text).parts[2:]))
    if text not in _moved:
        _moved.add(text)
        print(f"{text}: there is no {SEED_TMP} on this machine; using {moved} instead",
              file=sys.stderr)
    return moved


def data_home() -> Path:
    """Folder for generated and downloaded data, caches and trained quick models.

    >>> data_home().name  # doctest: +SKIP
    'kwlesson'
    """
    home = os.environ.get(HOME_ENV)
    path = Path(home).expanduser() if home else Path.home() / ".cache" / "kwlesson"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_datasets_dir() -> Path | None:
    """The folder of real Speech Commands clips next to the project, or None when it is absent.

    >>> shared_datasets_dir()  # doctest: +SKIP
    PosixPath('/.../shared/datasets')
    """
    env = os.environ.get(SHARED_ENV)
    path = Path(env).expanduser() if env else PROJECT_ROOT.parent / "shared" / "datasets"
    return path if path.is_dir() else None


def quick_mode() -> bool:
    """True unless ``KWLESSON_MODE=full``: quick mode runs every lesson in minutes on a laptop."""
    mode = os.environ.get(MODE_ENV, "quick").strip().lower()
    if mode not in ("quick", "full"):
        raise ValueError(f"{MODE_ENV} must be 'quick' or 'full', not {mode!r}")
    return mode == "quick"


def pick(quick: T, full: T) -> T:
    """Choose a setting by mode.

    >>> pick(quick=300, full=18000)  # in quick mode
    300
    """
    return quick if quick_mode() else full


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and (if it is loaded) TensorFlow, so a run repeats exactly."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is a dependency; this only guards odd installs
        pass
    import sys

    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up chatter (oneDNN, CUDA and CPU-feature notes).

    TensorFlow writes those lines from C++ straight to the process's stderr before its logging
    is set up, so TF_CPP_MIN_LOG_LEVEL alone does not silence them: we point file descriptor 2
    at /dev/null for the duration of the import. Python errors still raise as usual.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sys

    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                import tensorflow as tf

                tf.config.list_physical_devices()  # the CUDA probe complains here, muted
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def setup(seed: int = 0, quiet: bool = True) -> None:
    """The one call at the top of each notebook: quiet TensorFlow, seeds everywhere.

    >>> setup(seed=0)
    """
    if quiet:
        quiet_tensorflow()
    set_seed(seed)


# ------------------------------------------------------------------------------ Google Colab

#: Where the course lives (pyproject's [project.urls] Repository; a test checks they agree).
REPOSITORY = "https://github.com/kwlesson/kwlesson"
#: What a Colab runtime installs: the course from its repository (Colab has no copy of it).
COLAB_REQUIREMENT = f"kwlesson @ git+{REPOSITORY}"


def on_colab() -> bool:
    """Is this a Google Colab runtime? (Its kernel imports ``google.colab`` and sets
    ``COLAB_RELEASE_TAG``.)

    >>> on_colab()  # doctest: +SKIP
    False
    """
    import sys

    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def colab_setup() -> bool:
    """On Colab: turn on the widget manager that third-party widgets need (ipywidgets 8, the
    microphone recorder); elsewhere nothing at all. Each lesson's first code cell
    (:func:`colab_cell`) installs kwlesson and then calls this. Returns whether it ran.

    >>> colab_setup()  # not on Colab: nothing
    False
    """
    if not on_colab():
        return False
    from google.colab import output  # only there

    output.enable_custom_widget_manager()
    return True


def colab_cell() -> str:
    """The source of every lesson's first code cell: on Colab it installs the course and calls
    :func:`colab_setup`; elsewhere it does nothing and prints nothing. It cannot import kwlesson
    before installing it, hence the few lines (a test checks each notebook has exactly these).
    """
    return ("# On Google Colab only: install the course, turn on its widgets. Elsewhere: nothing.\n"
            "import os, subprocess, sys\n"
            'if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:\n'
            '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",\n'
            f'                    "{COLAB_REQUIREMENT}"], check=True)\n'
            "    import kwlesson.config\n"
            "    kwlesson.config.colab_setup()")


def colab_url(notebook: str) -> str:
    """Where ``notebooks/<notebook>`` opens in Google Colab (from the repository's main branch).

    >>> colab_url("00_welcome.ipynb")
    'https://colab.research.google.com/github/kwlesson/kwlesson/blob/main/notebooks/00_welcome.ipynb'
    """
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{notebook}"


def colab_badge(notebook: str) -> str:
    """The README's "Open in Colab" badge for a lesson (an image from Colab's site).

    >>> colab_badge("00_welcome.ipynb")[:26]
    '[![Open In Colab](https://'
    """
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook)})")


def colab_link(notebook: str) -> str:
    """The same link at the top of each lesson, as text: an image would be fetched from the
    internet each time the lesson is shown, and the course works offline."""
    return f"[**Open in Colab**]({colab_url(notebook)})"
