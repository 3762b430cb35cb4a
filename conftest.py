"""Test defaults for the whole project, notebooks included (nbval runs them from here too).

Keeps TensorFlow's start-up noise out of stored outputs, runs in quick mode on the CPU with
deterministic kernels. Unit tests write into pytest's tmp_path; the notebooks (nbval) use the
ordinary cache (KWLESSON_HOME, default ~/.cache/kwlesson) as a student's run would, so the
offline dataset and the quick model are built once and reused.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KWLESSON_MODE", "quick")
# CPU only and deterministic kernels: same seed, same result.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
