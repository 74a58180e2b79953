"""`StoreError`: a store that is missing, damaged, or does not fit what it is used with."""

from libkd_keras.data import DataError


class StoreError(DataError):
    """Raised for every store problem; a `DataError`, so the CLI prints it without a traceback."""
