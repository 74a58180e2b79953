"""libkd_keras: distil inductive bias from CNN and involution teachers into small ViTs (LIB-KD)."""

__version__ = "0.1.0"
