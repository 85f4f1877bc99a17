"""Witnessed checkpoints of the manifest chain (C2SP signed notes, Ed25519 cosignatures).

See :mod:`archiver.witness.note` for the note and key formats,
:mod:`archiver.witness.checkpoint` for what a checkpoint says and how a chain is
checked against it, and :mod:`archiver.witness.place` for where checkpoints are kept.
"""
