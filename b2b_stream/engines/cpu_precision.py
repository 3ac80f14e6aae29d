"""bf16 on the CPU, where the processor computes it natively.

On a CPU with AVX-512 BF16 (or AMX) oneDNN runs bf16 convolutions at about twice the fp32 rate, and
the shipped deblurrer in bf16 differs from fp32 by about a quarter of an 8-bit level on average
(BENCHMARKS.md ``deblurrer``). Without native support bf16 is emulated and slower than fp32, so it is
never chosen there. fp16 stays a GPU precision: the CPU has no fast fp16 convolutions.
"""

from __future__ import annotations

import functools

from b2b_train.trainutil import cpu_has_bf16


@functools.lru_cache(maxsize=1)
def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX); oneDNN's own "bf16 supported"
    is also true where it only emulates bf16 on AVX-512, which is slower than fp32."""
    return cpu_has_bf16()


def cpu_precision(asked: str, backend: str) -> tuple[str, str | None]:
    """The precision a CPU engine runs for ``asked`` on ``backend`` (``auto`` | ``torch`` |
    ``onnxruntime``), and a note when it differs from what was asked.

    ``auto`` stays ``auto`` for the ``auto`` backend (the engine choice measures fp32 and bf16) and is
    bf16 on torch where native, else fp32. Explicit bf16 needs native support and the torch backend
    (onnxruntime's CPU provider has no bf16 convolutions).
    """
    native = native_cpu_bf16()
    if asked == "auto":
        if backend == "auto":
            return "auto", None
        return ("bf16" if native and backend == "torch" else "fp32"), None
    if asked == "bf16":
        if not native:
            return "fp32", "bf16 asked for on a CPU without native bf16 (AVX-512 BF16 / AMX): running fp32"
        if backend == "onnxruntime":
            return "fp32", "bf16 asked for with onnxruntime, which has no bf16 CPU kernels: running fp32"
        return "bf16", None
    if asked == "fp16":
        return "fp32", "fp16 asked for on the CPU: running fp32 (fp16 is a GPU precision)"
    return asked, None
