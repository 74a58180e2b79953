"""libkd_keras: distil inductive bias from CNN and involution teachers into small ViTs (LIB-KD)."""

__version__ = "0.1.0"

__all__ = ["Distiller"]


def __getattr__(name):
    # Lazy, so that `import libkd_keras.cli` (the `libkd` command, `--help`) does not import TensorFlow.
    if name == "Distiller":
        from libkd_keras.distill import Distiller

        return Distiller
    raise AttributeError(f"module 'libkd_keras' has no attribute {name!r}")
