"""The base of every error a user can cause (bad recipe, corpus, run folder...): shown as one line, exit 2."""


class UserError(ValueError):
    """Input that cannot be used; the message names the file, key or value at fault."""
