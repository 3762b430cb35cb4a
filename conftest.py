"""Test defaults for the whole project, notebooks included (nbval runs them from here too).

Keeps TensorFlow's start-up noise out of stored outputs and keeps every cache of a test run
inside a throw-away folder, so tests never depend on (or spoil) a student's ~/.cache/kwlesson.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KWLESSON_MODE", "quick")
# CPU only and deterministic kernels: same seed, same result.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
