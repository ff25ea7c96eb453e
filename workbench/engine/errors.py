"""The base of every error a user can cause (bad recipe, corpus, run folder...): shown as one line, exit 2."""


class UserError(ValueError):
    """Input that cannot be used; the message names the file, key or value at fault."""


def error_message(exc: BaseException) -> str:
    """One line for a person: a user error's own message (it names what is at fault), else the error's
    type and message (a bug or a system error, where the type is the clue)."""
    if isinstance(exc, (UserError, FileNotFoundError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
