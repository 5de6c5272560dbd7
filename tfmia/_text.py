"""Text that is safe to print on a terminal.

Names in a report (attacks, models, notes) and file names on a command line
come from users and files.  Printed raw, a name holding ``ESC [ 2 J`` clears
the screen, and newlines or bidirectional overrides forge table rows.
:func:`printable` shows every character that is not printable as a Python
escape instead, so what is printed is exactly what is stored, one line.
"""

from __future__ import annotations

__all__ = ["printable"]


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text) -> str:
    """``str(text)`` with each non-printable character (``str.isprintable``) written as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``.

    Backslashes are kept as they are: the result is meant for reading, not for
    parsing back.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
