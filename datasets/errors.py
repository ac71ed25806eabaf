"""The one exception for bad input (docs/contracts.md, bad-input policy): the CLI maps it to exit 2."""

from __future__ import annotations

from avspot.datasets.redact import scrub_text


class DataError(ValueError):
    """Bad input: a malformed file, an unknown label, a wrong shape, an unreachable store.

    The message is one line that names the file, game or parameter and says what is wrong. It
    is scrubbed of secrets (URI passwords, signed-URL signatures, secret environment values):
    storage and tracking errors quote URLs. ``field`` names the parameter (a config field or a
    function argument) when the error is about one, and the message then starts with it: the
    command line, the only layer that knows flags, shows it as its flag (``--set lr``,
    ``--metric``).
    """

    def __init__(self, message: object = "", *, field: str | None = None) -> None:
        super().__init__(scrub_text(str(message)))
        self.field = field


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (whitespace collapsed, secrets scrubbed, at most
    ``limit`` characters)."""
    return " ".join(scrub_text(str(exc)).split())[:limit] or type(exc).__name__
