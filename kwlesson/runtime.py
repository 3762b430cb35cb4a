"""Running ``.tflite`` files: LiteRT on a computer or phone, TensorFlow Lite Micro as on a
microcontroller. One wrapper, :class:`TFLiteModel`, is what export, verify, streaming, the
lessons and the benchmarks call, so every part of the course feeds a file the same way and
quantises with one rule: ``q = round(x / scale) + zero_point`` (TFLite's own), clipped to the
integer type's range.

Introduced in notebook 07 (the exported files) and used again in 06 (latency) and 08
(streaming a ``.tflite``).

>>> m = TFLiteModel("/tmp/kws/model_int8.tflite")  # doctest: +SKIP
>>> m(np.zeros([2, 16000], np.float32)).shape  # doctest: +SKIP
(2, 12)
>>> m.latency_ms()  # doctest: +SKIP
0.41
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MicroRuntimeError",
    "TFLiteModel",
    "dequantize",
    "litert_interpreter",
    "micro_agreement",
    "micro_in_both_runtimes",
    "micro_interpreter_missing",
    "native_stderr_kept_back",
    "scale_and_zero",
    "quantize",
    "run_micro",
    "runs_in_litert",
    "tensor_names",
    "tflite_tensors",
]


@contextlib.contextmanager
def native_stderr_kept_back() -> Iterator[None]:
    """Hold back what native code writes to stderr (the quantiser prints a line per call,
    a dozen per freeze); show it after all if the block raises."""
    fd = 2  # native code writes to file descriptor 2, whatever sys.stderr is (Jupyter, pytest)
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except OSError:  # no file descriptor 2 at all
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def tensor_names(model: bytes) -> dict[int, str]:
    """Tensor index -> name in a ``.tflite`` (its first subgraph)."""
    from tensorflow.lite.tools import flatbuffer_utils

    tensors = flatbuffer_utils.convert_bytearray_to_object(bytearray(model)).subgraphs[0].tensors
    return {i: (t.name.decode() if t.name else str(i)) for i, t in enumerate(tensors)}


def runs_in_litert(model: bytes) -> bool:
    """Whether LiteRT with its default delegate accepts the model."""
    try:
        litert_interpreter(model)
    except (ValueError, RuntimeError):
        return False
    return True


def litert_interpreter(model: str | os.PathLike | bytes, num_threads: int | None = 1,
                        delegate: bool = True, preserve_all_tensors: bool = False) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default (XNNPACK) delegate LiteRT runs its built-in kernels, whose int8
    # arithmetic TensorFlow Lite Micro shares bit for bit; XNNPACK rounds differently.
    kwargs: dict[str, Any] = {"num_threads": num_threads}
    if preserve_all_tensors:  # to read intermediate tensors (calibration)
        kwargs["experimental_preserve_all_tensors"] = True
    if not delegate:
        kwargs["experimental_op_resolver_type"] = \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    global _DELEGATE_ANNOUNCED
    # LiteRT says "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." once per process,
    # from C++ on stderr (red in a notebook, and the only such line of the course): hold it back.
    quiet = delegate and not _DELEGATE_ANNOUNCED
    with native_stderr_kept_back() if quiet else contextlib.nullcontext():
        if isinstance(model, (bytes, bytearray)):
            interp = Interpreter(model_content=bytes(model), **kwargs)
        else:
            interp = Interpreter(model_path=os.fspath(model), **kwargs)
        interp.allocate_tensors()
    _DELEGATE_ANNOUNCED = _DELEGATE_ANNOUNCED or delegate
    return interp


_DELEGATE_ANNOUNCED = False


def scale_and_zero(detail: dict) -> tuple[float, int]:
    """(scale, zero point) of a LiteRT tensor detail; (0.0, 0) for a float tensor."""
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float values -> the tensor's dtype: ``round(x / scale) + zero_point`` clipped to the
    integer range for an int8/uint8 tensor (TFLite's rule), a plain cast for a float one.

    >>> quantize(np.array([0.5, -2.0]), {"dtype": np.int8, "quantization": (0.5, 3)})
    array([ 4, -1], dtype=int8)
    """
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = scale_and_zero(detail)
        info = np.iinfo(dtype)
        return np.clip(np.round(np.asarray(x) / scale) + zero,
                       info.min, info.max).astype(dtype)
    return np.asarray(x, dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """A tensor's values -> float32: ``(q - zero_point) * scale`` for an integer tensor.

    >>> dequantize(np.array([4, 0], np.int8), {"dtype": np.int8, "quantization": (0.5, 3)})
    array([ 0.5, -1.5], dtype=float32)
    """
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer):
        scale, zero = scale_and_zero(detail)
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


class TFLiteModel:
    """One ``.tflite`` file in LiteRT, called on float arrays; (de)quantises int8 ends itself.

    ``kind`` is ``"audio"`` (input [1, samples] or [samples]) or ``"features"`` (input
    [1, frames, bins]). Calling it on a batch runs the clips one at a time (the files have a
    batch of 1, as a phone or microcontroller runs them) and returns float outputs
    [n, labels]; :meth:`run_batch` resizes the batch instead where the file allows it (fast,
    for streaming). ``delegate=False`` turns LiteRT's default XNNPACK delegate off (built-in
    kernels only).

    >>> m = TFLiteModel("/tmp/kws/model_int8.tflite")  # doctest: +SKIP
    >>> m(np.zeros([2, 16000], np.float32)).shape  # doctest: +SKIP
    (2, 12)
    """

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = 1,
                 name: str | None = None, delegate: bool = True) -> None:
        self.name = name or (os.fspath(model) if not isinstance(model, bytes) else "<bytes>")
        try:
            self.interpreter = litert_interpreter(model, num_threads, delegate)
        except (ValueError, RuntimeError) as err:
            if not delegate or "XNNPACK" not in str(err):
                raise ValueError(f"{self.name}: not a LiteRT model ({err})") from err
            # XNNPACK refuses int8 scales it cannot requantise, e.g. after a layer whose
            # ReLUs all died (its range is zero); LiteRT's built-in kernels still run it.
            warnings.warn(f"{self.name}: LiteRT's XNNPACK delegate refused the model "
                          f"({str(err).splitlines()[0]}); running it with built-in kernels",
                          stacklevel=2)
            self.interpreter = litert_interpreter(model, num_threads, delegate=False)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.name}: expected one input and one output, the model has "
                             f"{len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self.input["shape"])
        #: False for an input without a batch axis ([samples]): one clip per call.
        self.batched = len(self.input_shape) >= 2
        self.kind = "audio" if len(self.input_shape) <= 2 else "features"
        out_shape = self.output["shape"][1:] if self.batched else self.output["shape"]
        self.num_labels = int(np.prod(out_shape))
        self._batch = self.input_shape[0] if self.batched else 1  # -1: fixed at one

    @property
    def one_shape(self) -> tuple[int, ...]:
        """The shape of one input (without the batch axis)."""
        return self.input_shape[1:] if self.batched else self.input_shape

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float input -> the input tensor's dtype (int8 with its scale and zero point)."""
        return quantize(x, self.input)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        """Output tensor -> float scores."""
        return dequantize(y, self.output)

    def invoke_raw(self, x: np.ndarray) -> np.ndarray:
        """Run one already-quantised input of the input tensor's exact shape; raw output."""
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def _batch_of(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        x = np.asarray(x, np.float32)
        single = x.shape == self.one_shape
        if single:
            x = x[None]
        if x.shape[1:] != self.one_shape:
            raise ValueError(f"{self.name}: expects inputs shaped {list(self.one_shape)} "
                             f"(or a batch of them), got {list(x.shape)}")
        return x, single

    def _one_by_one(self, x: np.ndarray) -> np.ndarray:
        if self._batch not in (1, -1):
            self._resize(1)
        shape = (1, *self.one_shape) if self.batched else self.one_shape
        rows = [self.dequantize_output(self.invoke_raw(self.quantize_input(one.reshape(shape))))
                .reshape(-1) for one in x]
        return np.stack(rows) if rows else np.zeros((0, self.num_labels), np.float32)

    def _resize(self, n: int) -> None:
        self.interpreter.resize_tensor_input(self.input["index"], [n, *self.one_shape],
                                             strict=False)
        self.interpreter.allocate_tensors()
        self._batch = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x, single = self._batch_of(x)
        out = self._one_by_one(x)
        return out[0] if single else out

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """Like calling the model, in one invoke for the whole batch where the file lets its
        batch be resized (one invoke per input where it does not)."""
        x, single = self._batch_of(x)
        if not self.batched or self._batch == -1 or len(x) == 0:
            out = self._one_by_one(x)
        else:
            if self._batch != len(x):
                try:
                    self._resize(len(x))
                except (ValueError, RuntimeError):  # a fixed batch of one
                    self._resize(1)
                    self._batch = -1
                    out = self._one_by_one(x)
                    return out[0] if single else out
            raw = self.invoke_raw(self.quantize_input(x))
            out = self.dequantize_output(raw).reshape(len(x), -1)
        return out[0] if single else out

    def latency_ms(self, x: np.ndarray | None = None, runs: int = 100, warmup: int = 10
                   ) -> float:
        """Median milliseconds of one ``invoke()`` on one input (``x`` float, of one input's
        shape; default: small random values), after ``warmup`` calls (delegate set-up,
        caches)."""
        if x is None:
            x = 0.1 * np.random.default_rng(0).standard_normal(self.one_shape)
        shape = (1, *self.one_shape) if self.batched else self.one_shape
        if self._batch not in (1, -1):
            self._resize(1)
        q = self.quantize_input(np.asarray(x, np.float32).reshape(shape))
        self.interpreter.set_tensor(self.input["index"], q)
        for _ in range(warmup):
            self.interpreter.invoke()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)


class MicroRuntimeError(RuntimeError):
    """TensorFlow Lite Micro stopped on a model (it aborts rather than raising)."""


# Runs in a child process: TensorFlow Lite Micro aborts the whole process on a model it cannot
# prepare (an int8 scale so small its requantisation overflows, say), which would take a
# notebook's kernel with it. numpy and tflite_micro only: no TensorFlow to import.
_MICRO_CHILD = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
folder, arena = sys.argv[1], int(sys.argv[2])
model = open(folder + "/model.tflite", "rb").read()
interp = runtime.Interpreter.from_bytes(model, arena_size=arena or None)
rows = []
for one in np.load(folder + "/inputs.npy"):
    interp.set_input(np.ascontiguousarray(one[None]), 0)
    interp.invoke()
    rows.append(np.array(interp.get_output(0)).reshape(-1))
np.save(folder + "/outputs.npy", np.stack(rows) if rows else np.zeros((0, 0), np.int8))
"""


def micro_interpreter_missing() -> str | None:
    """None when TensorFlow Lite Micro's Python interpreter is installed, else why not and what
    that means, in one line (PyPI's ``tflite-micro`` has wheels for Linux x86_64 only).

    >>> micro_interpreter_missing()  # doctest: +SKIP
    """
    import importlib.util
    import platform

    if importlib.util.find_spec("tflite_micro") is not None:
        return None
    where = f"{platform.system()} {platform.machine()}"
    return (f"TensorFlow Lite Micro's Python interpreter (tflite-micro) is not installed here "
            f"({where}; it has wheels for Linux x86_64 only, pip install tflite-micro there): "
            "the micro model is checked in LiteRT only")


def run_micro(model: bytes, inputs: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Run an int8 model in TensorFlow Lite Micro's Python interpreter, one input at a time.

    ``inputs``: already-quantised int8 [n, frames, bins]; returns the raw int8 outputs
    [n, labels]. Needs ``pip install tflite-micro``. It runs in a child process (about 0.2 s
    more), so that a model TensorFlow Lite Micro cannot run is a :class:`MicroRuntimeError`
    with its message instead of the end of this process.

    >>> run_micro(open("model_micro.tflite", "rb").read(), q).shape  # doctest: +SKIP
    (100, 12)
    """
    import subprocess

    missing = micro_interpreter_missing()
    if missing:
        raise ImportError(missing)
    with tempfile.TemporaryDirectory(prefix="kwlesson-micro-") as folder:
        Path(folder, "model.tflite").write_bytes(bytes(model))
        np.save(Path(folder, "inputs.npy"), np.asarray(inputs))
        done = subprocess.run([sys.executable, "-c", _MICRO_CHILD, folder, str(arena_size or 0)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            import signal

            how = (f"signal {-done.returncode}, {signal.Signals(-done.returncode).name}"
                   if done.returncode < 0 else f"exit status {done.returncode}")
            said = " ".join(done.stderr.strip().splitlines()[-3:]) or "no message"
            raise MicroRuntimeError(f"TensorFlow Lite Micro stopped ({how}) running the model: "
                                    f"{said}")
        return np.load(Path(folder, "outputs.npy"))


def micro_in_both_runtimes(micro: bytes, features: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """A micro model's raw int8 scores for ``features`` (float, as its input takes them) in
    TensorFlow Lite Micro and in LiteRT's built-in kernels: (tflm, litert). Raises
    ImportError without tflite-micro, :class:`MicroRuntimeError` when it cannot run it."""
    builtin = TFLiteModel(micro, delegate=False)
    q = builtin.quantize_input(features)
    raw = run_micro(micro, q)
    return raw, np.stack([builtin.invoke_raw(x[None]).reshape(-1) for x in q])


def micro_agreement(micro: bytes, features: np.ndarray) -> float | None:
    """How often TensorFlow Lite Micro and LiteRT's built-in kernels give a micro model's
    ``features`` (float, already prepared) the same top label; None without tflite-micro."""
    try:
        raw, lite = micro_in_both_runtimes(micro, features)
    except ImportError:
        return None
    except MicroRuntimeError:
        return 0.0  # it does not run there at all
    return float(np.mean(raw.argmax(-1) == lite.argmax(-1)))


def tflite_tensors(model: str | os.PathLike | bytes) -> dict[str, Any]:
    """Inputs, outputs and operators of a ``.tflite``, as the model card lists them.

    >>> tflite_tensors("/tmp/kws/model_micro.tflite")["inputs"][0]["dtype"]  # doctest: +SKIP
    'int8'
    """
    interp = litert_interpreter(model, delegate=False)

    def describe(d: dict) -> dict[str, Any]:
        scale, zero = scale_and_zero(d)
        return {"name": d["name"], "index": int(d["index"]),
                "shape": [int(n) for n in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": scale, "zero_point": zero}}

    ops = sorted({op["op_name"] for op in interp._get_ops_details()} - {"DELEGATE"})
    signatures = interp.get_signature_list()
    return {"inputs": [describe(d) for d in interp.get_input_details()],
            "outputs": [describe(d) for d in interp.get_output_details()],
            "operators": ops, "signatures": signatures}
