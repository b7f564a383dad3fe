"""mlatune: tune, check and ship Triton MLA decode kernels."""
from .kernels import Config, mla_decode

__version__ = "0.1.0"
__all__ = ["Config", "mla_decode", "__version__"]
