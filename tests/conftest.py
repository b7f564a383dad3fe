"""Test setup: without a GPU, every kernel runs through the Triton interpreter."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
