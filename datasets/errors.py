"""The one exception for bad input (docs/contracts.md, bad-input policy): the CLI maps it to exit 2."""


class DataError(ValueError):
    """Bad input: a malformed file, an unknown label, a wrong shape, an unreachable store.

    The message is one line that names the file, game or parameter and says what is wrong.
    """


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (whitespace collapsed, at most ``limit`` characters)."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__
