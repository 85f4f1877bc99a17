"""Reading witness keys from the command line: a private key file, verifier keys (CLI-facing:
errors are UsageError, one line, never quoting a private key)."""

from __future__ import annotations

from pathlib import Path

from archiver.errors import UsageError
from archiver.witness.note import NoteError, Signer, Verifier


def load_signer(path: Path) -> Signer:
    """The witness key in ``path``; UsageError (never quoting the key) if unusable."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a key file"
        raise UsageError(f"--key {path}: cannot read it ({reason})") from None
    try:
        return Signer.parse(text)
    except NoteError as exc:
        raise UsageError(f"--key {path}: {exc}") from None


def load_verifiers(values: list[str] | None) -> list[Verifier]:
    """``--witness-key`` values: a verifier key, or a file holding one per line."""
    found = []
    for value in values or []:
        lines = [value]
        if "+" not in value or Path(value).is_file():
            try:
                lines = Path(value).read_text(encoding="ascii").split()
            except (OSError, UnicodeDecodeError):
                raise UsageError(f"--witness-key {value}: not a verifier key or a file") from None
        try:
            found += [Verifier.parse(line) for line in lines if line.strip()]
        except NoteError as exc:
            raise UsageError(f"--witness-key {value}: {exc}") from None
    return found
