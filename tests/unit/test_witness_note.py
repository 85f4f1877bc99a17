"""Signed notes, witness keys and checkpoints (pure): what is accepted, what is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archiver.witness.checkpoint import ChainState, Checkpoint, conflicts, inconsistencies
from archiver.witness.note import NoteError, Signer, Verifier, open_note, sign_note

WHEN = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
SHA = {n: f"{n:x}" * 64 for n in range(1, 10)}


def _state(**heads: tuple[int, dict[int, str]]) -> ChainState:
    state = ChainState()
    for writer, (seq, walk) in heads.items():
        state.heads[writer] = (seq, walk[seq])
        state.walks[writer] = walk
    return state


def test_a_note_signed_and_opened_round_trips():
    signer = Signer.generate("audit.example/calls")
    note = sign_note("origin\n1\nroot\n", signer, WHEN)
    opened = open_note(note.encode(), [signer.verifier])
    assert (opened.text, opened.signed_at, opened.signer) == (
        "origin\n1\nroot\n",
        WHEN,
        "audit.example/calls",
    )


def test_keys_round_trip_through_their_text():
    signer = Signer.generate("a.example/k")
    again = Signer.parse(signer.to_text())
    assert again.verifier == signer.verifier
    assert Verifier.parse(signer.verifier.vkey()) == signer.verifier


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n: n.replace("origin", "origim"), "does not verify"),
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n + "\x01", "control characters"),
        (lambda n: n.encode("utf-16").decode("latin-1"), "control characters"),
        (lambda n: n.replace("\u2014 ", "- "), "malformed"),
    ],
)
def test_an_altered_note_is_refused(change, message):
    signer = Signer.generate("audit.example/calls")
    note = sign_note("origin\n1\nroot\n", signer, WHEN)
    with pytest.raises(NoteError, match=message):
        open_note(change(note).encode(), [signer.verifier])


def test_a_note_signed_by_another_key_is_refused_even_under_the_same_name():
    trusted = Signer.generate("audit.example/calls")
    other = Signer.generate("audit.example/calls")
    note = sign_note("origin\n1\nroot\n", other, WHEN)
    with pytest.raises(NoteError, match="signed by no trusted witness key"):
        open_note(note.encode(), [trusted.verifier])


def test_an_oversized_note_is_refused_unread():
    with pytest.raises(NoteError, match="larger than any checkpoint"):
        open_note(b"x" * (300 * 1024), [])


@pytest.mark.parametrize(
    "text",
    ["", "PRIVATE+KEY+a", "PRIVATE+KEY+a+00000000+!!!", "PRIVATE+KEY+a b+00000000+AAAA"],
)
def test_bad_key_files_are_refused(text):
    with pytest.raises(NoteError):
        Signer.parse(text)


def test_a_verifier_key_with_a_wrong_id_is_refused():
    vkey = Signer.generate("a.example/k").verifier.vkey()
    name, _, material = vkey.split("+", 2)
    with pytest.raises(NoteError, match="id does not match"):
        Verifier.parse(f"{name}+00000000+{material}")


def test_a_checkpoint_round_trips_and_its_root_binds_its_lines():
    state = _state(w1=(3, {1: SHA[1], 2: SHA[2], 3: SHA[3]}), w2=(1, {1: SHA[4]}))
    made = Checkpoint.of("archive.example/calls", state)
    text = made.text()
    assert text.splitlines()[:2] == ["archive.example/calls", "4"]
    assert Checkpoint.parse(text).heads == made.heads
    with pytest.raises(NoteError, match="does not match"):
        Checkpoint.parse(text.replace(f"w2 1 {SHA[4]}", f"w2 1 {SHA[5]}"))


def test_inconsistencies_name_a_truncation_a_rewrite_and_a_chain_gone():
    old = Checkpoint.of("o", _state(w1=(3, {3: SHA[3]}), w2=(2, {2: SHA[2]}), w3=(1, {1: SHA[1]})))
    now = _state(w1=(2, {1: SHA[1], 2: SHA[2]}), w2=(3, {3: SHA[6], 2: SHA[7]}))
    found = {(i.writer, i.seq): i.detail for i in inconsistencies(old, now)}
    assert found[("w1", 3)].startswith("truncated: the head is at link 2")
    assert found[("w2", 2)].startswith("rewritten: link 2 has SHA-256")
    assert found[("w3", 1)].startswith("the whole chain is gone")
    assert inconsistencies(old, _state(w1=(4, {3: SHA[3], 4: SHA[4]}), w2=(2, {2: SHA[2]}),
                                       w3=(1, {1: SHA[1]}))) == []  # fmt: skip


def test_two_checkpoints_that_cannot_both_be_true_conflict():
    older = Checkpoint("o", {"w1": (3, SHA[3])}, name="a")
    assert conflicts(older, Checkpoint("o", {"w1": (4, SHA[4])}, name="b")) == []
    assert conflicts(older, Checkpoint("o", {"w1": (3, SHA[5])}, name="b"))
    assert conflicts(older, Checkpoint("o", {"w1": (2, SHA[2])}, name="b"))
    assert conflicts(older, Checkpoint("o", {}, name="b"))


def test_a_key_file_others_may_read_or_a_huge_one_is_refused(tmp_path):
    from archiver.errors import UsageError
    from archiver.witness.keys import load_signer, load_verifiers

    signer = Signer.generate("a.example/k")
    path = tmp_path / "witness.key"
    path.write_text(signer.to_text() + "\n")
    path.chmod(0o600)
    assert load_signer(path).verifier == signer.verifier
    path.chmod(0o640)
    with pytest.raises(UsageError, match="readable or writable by others") as refused:
        load_signer(path)
    assert signer.to_text() not in str(refused.value)
    huge = tmp_path / "huge.key"
    huge.write_bytes(b"x" * 100_000)
    huge.chmod(0o600)
    with pytest.raises(UsageError, match="not a witness key file"):
        load_signer(huge)
    vkeys = tmp_path / "keys.pub"
    vkeys.write_text(signer.verifier.vkey() + "\n")
    assert load_verifiers([str(vkeys), signer.verifier.vkey()]) == [signer.verifier] * 2
