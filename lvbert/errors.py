"""User-facing errors: the CLI prints them as one line and exits with status 2."""


class LvBertError(Exception):
    """A mistake in the user's input (bad argument, missing file, ...).

    The message must say what is wrong and how to fix it, in one line.
    """
