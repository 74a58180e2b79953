"""Errors raised for bad data sources; the CLI catches `DataError` and prints it without a traceback."""


class DataError(ValueError):
    """A data source or split cannot be used as given (the message says why and what to do)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A path, split folder or prepared data set that does not exist."""
