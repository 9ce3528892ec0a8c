"""higgs-studio's root confinement: every path field resolves inside the root, or is refused in one line."""

from __future__ import annotations

import pytest

from higgs_train.studio.paths import PathRefused, Root


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root" / "data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return Root(tmp_path / "root")


def test_paths_inside_the_root_resolve_relative_or_absolute(root):
    assert root.inside("data") == root.folder / "data"
    assert root.inside(str(root.folder / "data" / "new.wav")) == root.folder / "data" / "new.wav"
    (root.folder / "alias").symlink_to(root.folder / "data")  # a symlink that stays inside is fine
    assert root.inside("alias") == root.folder / "data"
    assert root.shown(root.inside("data/x.jsonl")) == "data/x.jsonl"


@pytest.mark.parametrize("given, says", [
    ("../outside", "'..' is not allowed"),
    ("data/../../outside", "'..' is not allowed"),
    ("/etc/passwd", "lies outside the studio's root"),
    ("escape/secret.txt", "lies outside the studio's root"),
    ("", "an empty path"),
])
def test_escapes_are_refused_in_one_line_naming_the_path(root, tmp_path, given, says):
    (root.folder / "escape").symlink_to(tmp_path / "outside")
    with pytest.raises(PathRefused, match=r"^[^\n]*$") as refused:
        root.inside(given)
    assert says in str(refused.value) and given in str(refused.value)


def test_a_root_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(PathRefused, match="is not a folder"):
        Root(tmp_path / "missing")


@pytest.mark.parametrize("argv, says", [
    (["--host", "0.0.0.0"], "add --auth USER:PASSWORD"),
    (["--host", "0.0.0.0", "--auth", "admin"], "--auth must be USER:PASSWORD"),
])
def test_serving_beyond_this_machine_needs_a_password(argv, says):
    from higgs_train.studio.__main__ import main

    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert says in str(refused.value)
