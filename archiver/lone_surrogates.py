"""Text that is not UTF-8: a lone UTF-16 surrogate, one function per way of handling it.

A provider's JSON may send ``"\\ud800"`` in an id; a local folder lists a file
name that is not UTF-8 with a surrogate standing for each odd byte. Such text has
no UTF-8 form: SQLite refuses it as TEXT and a UTF-8 output stops half-way. Kept
as bytes (``surrogatepass``: compared byte by byte, in the order Python sorts the
strings), or written escaped (``\\udcff``, what JSON says for it).
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (has no UTF-8 form)."""
    return _SURROGATE.search(text) is not None


def printable(text: str) -> str:
    """``text`` with each lone surrogate as its ``\\uXXXX`` escape: in a JSON string the
    same value; elsewhere its printable spelling."""
    return _SURROGATE.sub(lambda found: f"\\u{ord(found[0]):04x}", text)


def to_bytes(text: str) -> bytes:
    """``text`` as UTF-8, lone surrogates kept (a BLOB SQLite takes; :func:`from_bytes`)."""
    return text.encode("utf-8", "surrogatepass")


def from_bytes(data: bytes) -> str:
    """The text :func:`to_bytes` made."""
    return bytes(data).decode("utf-8", "surrogatepass")
