"""Fix for the Triton interpreter's tl.dot on bf16, which multiplies the raw uint16 bit patterns."""
from __future__ import annotations

import numpy as np
import triton.language as tl

_patched = False


def patch_interpreter_dot() -> None:
    """Make the interpreter widen bf16 dot operands to fp32 first (idempotent)."""
    global _patched
    if _patched:
        return
    from triton.runtime import interpreter as it

    original = it.InterpreterBuilder.create_dot

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        if a.dtype.scalar == tl.bfloat16 or b.dtype.scalar == tl.bfloat16:
            def widen(x):
                if x.dtype.scalar != tl.bfloat16:
                    return x.data.astype(np.float32)
                return (x.data.astype(np.uint32) << 16).view(np.float32)

            return it.TensorHandle(np.matmul(widen(a), widen(b), dtype=d.data.dtype) + d.data, d.dtype.scalar)
        return original(self, a, b, d, input_precision, max_num_imprecise_acc)

    it.InterpreterBuilder.create_dot = create_dot
    _patched = True
