"""The one error every data reader raises."""


class DataError(ValueError):
    """A data file is missing, malformed or holds values outside their range. The
    message names the file and, where it applies, the line (or row) and column."""
