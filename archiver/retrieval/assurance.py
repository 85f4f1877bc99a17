"""``verify``'s assurance line: what its result is worth, in one line (pure).

It names the anchors the run could use (versions, Object Lock, timestamps,
witnesses) and the rows of the threat model (docs/compliance.md, "Threat
model") that the result covers, and those it does not:

- ``R``: someone with read access only: always covered;
- ``S-versions``: a storage administrator (no archiver key) rewriting or
  deleting through versions or delete markers: caught in a versioned bucket;
- ``S-lock``: ... who also removes versions: not possible under Object Lock
  COMPLIANCE (within retention), nor GOVERNANCE without the bypass permission;
- ``W``: anyone without the witness key, archiver operator included, rewriting
  or truncating the chain behind the newest witnessed checkpoint;
- ``T``: a token removed or replaced, lines dated after their token;
- ``P``: planted writers (registration checked with a witness key).
"""

from __future__ import annotations

from datetime import datetime


def assurance_line(
    *,
    s3: bool,
    versioning: str,
    lock_mode: str | None,
    tokens_checked: int | None,
    checkpoints: int,
    newest: datetime | None,
    registration: bool,
) -> str:
    """The line; ``tokens_checked`` None: timestamps not checked."""
    covered = ["R"]
    missing = []
    kept = "versions kept" if versioning in ("Enabled", "Suspended") else "no versions"
    store = f"S3 bucket ({kept}, Object Lock {lock_mode or 'off'})" if s3 else "local folder"
    if versioning in ("Enabled", "Suspended"):
        covered.append("S-versions")
        if lock_mode == "COMPLIANCE":
            covered.append("S-lock")
        elif lock_mode == "GOVERNANCE":
            covered.append("S-lock (unless granted s3:BypassGovernanceRetention)")
        else:
            missing.append("S-lock (versions can be removed for good)")
    else:
        missing.append("S-versions (a consistent rewrite or truncation leaves no trace)")
    if tokens_checked is None:
        stamps = "not checked"
        missing.append("T")
    else:
        stamps = f"{tokens_checked} token(s) checked"
        covered.append("T")
    if checkpoints:
        when = newest.isoformat().replace("+00:00", "Z") if newest else "?"
        witnesses = f"{checkpoints} checkpoint(s), the newest {when}"
        covered.append(f"W (up to {when})")
    else:
        witnesses = "none"
        missing.append("W (an insider's consistent rewrite or truncation)")
    if registration:
        covered.append("P")
    else:
        missing.append("P (writers' registrations not checked: --witness-key)")
    return (
        f"ASSURANCE {store}; timestamps: {stamps}; witnesses: {witnesses}; "
        f"threat-model rows covered: {', '.join(covered)}; "
        f"not covered: {', '.join(missing) or 'none'} (docs/compliance.md, Threat model)"
    )
