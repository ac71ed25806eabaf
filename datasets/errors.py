"""The one exception for bad input (DESIGN section 8): the CLI maps it to exit code 2."""


class DataError(ValueError):
    """Bad input: a malformed file, an unknown label, a wrong shape, an unreachable store.

    The message is one line that names the file, game or parameter and says what is wrong.
    """
