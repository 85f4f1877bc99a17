"""Unknown ``ARCHIVER_*`` variables are found, with the closest real name."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.setting_names import known_variables, unknown_variables, variables_set
from archiver.settings import StorageSettings


@pytest.mark.parametrize(
    ("typo", "closest"),
    [
        ("ARCHIVER_STORAGE__URLL", "ARCHIVER_STORAGE__URL"),
        ("ARCHIVER_CONCURENCY", "ARCHIVER_CONCURRENCY"),
        ("ARCHIVER_SOURCE__KNID", "ARCHIVER_SOURCE__KIND"),
        ("archiver_storge__url", "ARCHIVER_STORAGE__URL"),
        ("ARCHIVER_SOURCE_TOKEN", "ARCHIVER_SOURCE__TOKEN"),
        ("ARCHIVER_NOTHING_LIKE_IT", None),
    ],
)
def test_an_unknown_variable_names_the_closest_setting(typo: str, closest: str | None) -> None:
    [found] = unknown_variables([(typo, "environment")])
    assert found.closest == closest
    assert typo in found.message()
    if closest:
        assert f"did you mean {closest}?" in found.message()


def test_real_settings_and_other_variables_are_not_reported() -> None:
    names = [(n, "environment") for n in sorted(known_variables())]
    names += [("PATH", "environment"), ("AWS_ACCESS_KEY_ID", "environment")]
    names += [("archiver_source__kind", "environment"), ("ARCHIVER_SOURCE", "environment")]
    assert unknown_variables(names) == []


def test_every_documented_setting_is_known() -> None:
    example = Path(__file__).parents[2] / "settings.example.env"
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in example.read_text().splitlines()
        if line.lstrip("# ").startswith("ARCHIVER_") and "=" in line
    }
    assert documented
    assert documented <= known_variables()


def test_dotenv_files_are_read_for_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ARCHIVER_CONCURENCY=4\n")
    extra = tmp_path / "site.env"
    extra.write_text("ARCHIVER_GRAСE=3\n")  # a Cyrillic "С"
    found = unknown_variables(variables_set(extra, environ={"ARCHIVER_GRACE": "1"}))
    assert [(u.name, u.where) for u in found] == [
        ("ARCHIVER_CONCURENCY", ".env"),
        ("ARCHIVER_GRAСE", str(extra)),
    ]


@pytest.mark.parametrize("url", ["s3:/bucket", "s3:bucket", "S3://bucket", "gs://b", "http://x"])
def test_a_url_that_is_not_s3_or_a_path_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"must be s3://bucket\[/prefix\], file://PATH"):
        StorageSettings(url=url)


@pytest.mark.parametrize("url", ["./archive", "/srv/archive", "file:///srv/a", "C:/archive", "a:b"])
def test_paths_are_still_paths(url: str) -> None:
    assert not StorageSettings(url=url).is_s3
