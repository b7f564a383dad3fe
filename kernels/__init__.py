"""MLA decode kernels (Triton), their launcher, knobs, fp8 formats and the PyTorch reference."""
from .config import D_LATENT, D_QK, D_ROPE, Config, check_config, source_hash
from .mla_decode import KV_FORMATS, default_config, mla_decode
from .reference import mla_decode_ref

__all__ = ["Config", "check_config", "default_config", "mla_decode", "mla_decode_ref", "KV_FORMATS", "source_hash", "D_LATENT", "D_QK", "D_ROPE"]
