"""mlatune: tune, check and ship Triton MLA decode kernels."""

__version__ = "0.1.0"
__all__ = ["Config", "mla_decode", "__version__"]


def __getattr__(name):
    # Lazy, so a command can choose the Triton interpreter (TRITON_INTERPRET) before the kernels are imported.
    if name in ("Config", "mla_decode"):
        from . import kernels

        return getattr(kernels, name)
    raise AttributeError(f"module 'mlatune' has no attribute {name!r}")
