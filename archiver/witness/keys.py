"""Reading witness keys from the command line: a private key file, verifier keys (CLI-facing:
errors are UsageError, one line, never quoting a private key)."""

from __future__ import annotations

from pathlib import Path

from archiver.errors import UsageError
from archiver.witness.note import NoteError, Signer, Verifier

# A key file is one line of about 100 characters.
MAX_KEY_FILE = 4096


def load_signer(path: Path) -> Signer:
    """The witness key in ``path``; UsageError (never quoting the key) if unusable.

    Like ssh with a private key, a key file others may read is refused: whoever
    read it could sign checkpoints and registrations.
    """
    try:
        status = path.stat()
        if status.st_size > MAX_KEY_FILE:
            raise UsageError(f"--key {path}: {status.st_size} bytes, not a witness key file")
        if status.st_mode & 0o077:
            raise UsageError(
                f"--key {path}: readable or writable by others (mode "
                f"{status.st_mode & 0o777:o}): chmod 600 it, and make a new key if others read it"
            )
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
                if Path(value).stat().st_size > MAX_KEY_FILE * 16:
                    raise UsageError(f"--witness-key {value}: too large for a file of keys")
                lines = Path(value).read_text(encoding="ascii").split()
            except (OSError, UnicodeDecodeError):
                raise UsageError(f"--witness-key {value}: not a verifier key or a file") from None
        try:
            found += [Verifier.parse(line) for line in lines if line.strip()]
        except NoteError as exc:
            raise UsageError(f"--witness-key {value}: {exc}") from None
    return found
