"""Errors a user can fix; the CLI prints them as one line, without a traceback."""

from transforms.errors import ConfigError


class UserError(ConfigError):
    """A bad input, output folder or option: the message names the thing and the fix."""


class ReconcileError(RuntimeError):
    """The written output does not account for every input: a bug, never silently accepted."""


class ErrorRateExceeded(UserError):
    """More inputs or records failed than --max-error-rate allows; the message sums up the reasons."""


# A worker that finds the user's mistake (a bad listing row, a key clash) cannot raise UserError to the driver
# across a runner: every runner reports a worker's failure as text. The message travels behind this mark and
# ``refusal_in`` finds it again, so the CLI still prints one line.
REFUSED = "augbeam-refused: "


class WorkerRefusal(RuntimeError):
    """A ``UserError`` raised on a worker, marked so the driver can show its one line."""

    def __init__(self, message: str) -> None:
        # Beam re-raises a worker's error as the same type with more text: the mark goes in once.
        text = message.replace("\n", " ")
        super().__init__(text if text.startswith(REFUSED) else REFUSED + text)


def refusal_in(exc: BaseException) -> str | None:
    """The one-line message of a ``WorkerRefusal`` anywhere in a runner's error (its text or its causes)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        at = text.find(REFUSED)
        if at >= 0:
            line = text[at + len(REFUSED) :].splitlines()[0]
            return line.split(" [while running ")[0].strip().rstrip("'\"")
        current = current.__cause__ or current.__context__
    return None


class OutputInUse(UserError):
    """Another live run holds the output folder's lock; the message names it (host, pid, start) and the fix."""


class OutputTaken(UserError):
    """Another run took over or wrote into this run's output folder while it ran: no manifest is written."""
