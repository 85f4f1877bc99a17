"""Every bad input to get, verify, search and hold: one clear line, the right exit code.

In process (``archiver.cli.main``) on an empty local storage: nothing here
needs a server.
"""

from __future__ import annotations

import os

import pytest

from archiver.cli import main


@pytest.fixture(autouse=True)
def _empty_storage(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHIVER_STORAGE__URL", str(tmp_path / "archive"))


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["get", "x"], 2, "one of the arguments -o/--output --url is required"),
        (["get", "x", "-o", "f", "--url"], 2, "not allowed with argument"),
        (["get", "x", "--url", "--expires", "0"], 2, "--expires: between 1 and 604800"),
        (["get", "x", "-o", "/no/such/dir/f"], 2, "no archive in "),
        (["get", "x", "--provider", "other", "--url"], 2, "invalid choice: 'other'"),
        (["verify", "--since", "soon"], 2, "not a date or datetime: 'soon'"),
        (["verify", "--since", "2021-02-18", "--until", "2021-02-17"], 2, "--until must be later"),
        (["verify", "--concurrency", "0"], 2, "--concurrency: between 1 and 512"),
        (["search", "--phone", "abc"], 2, "--phone 'abc': no digits"),
        (["search", "--limit", "0"], 2, "--limit: at least 1"),
        (["search", "--direction", "up"], 2, "invalid choice: 'up'"),
        (["search", "--format", "xml"], 2, "invalid choice: 'xml'"),
        (["hold", "x", "--on", "--off"], 2, "not allowed with argument --on"),
        (["hold", "x", "--on"], 2, "legal holds need S3 Object Lock"),
        (["reindex", "--until", "yesterday-ish"], 2, "not a date or datetime"),
    ],
)
def test_bad_input_is_one_line_and_the_right_code(capsys, argv, code, message):
    try:
        result = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        result = exc.code
    assert result == code
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_lock_settings_on_a_local_directory_are_refused(capsys, monkeypatch):
    monkeypatch.setenv("ARCHIVER_STORAGE__OBJECT_LOCK_MODE", "governance")
    monkeypatch.setenv("ARCHIVER_STORAGE__RETENTION_DAYS", "30")
    assert main(["get", "x", "--url"]) == 2
    assert "OBJECT_LOCK_MODE: needs S3" in capsys.readouterr().err


def test_an_empty_storage_is_no_archive_not_nothing_to_verify(capsys, tmp_path):
    # Issue 12: "nothing to verify", exit 0, hid a wrong ARCHIVER_STORAGE__URL.
    assert main(["verify"]) == 2
    assert "no archive in " in capsys.readouterr().err
    assert not (tmp_path / "archive").exists()


def test_an_unknown_id_in_an_archive_is_exit_4(capsys, tmp_path):
    partition = tmp_path / "archive" / "manifests" / "date=2021-02-17"
    partition.mkdir(parents=True)
    (partition / "batch.jsonl").write_text("")
    assert main(["get", "x", "-o", "/no/such/dir/f"]) == 4
    assert "no archived call with id 'x'" in capsys.readouterr().err
