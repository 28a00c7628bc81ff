"""The pure part of buildkit.py: which files `.dockerignore` leaves in the build context, and the key
that decides whether the project image is rebuilt. Runs on a small repository in tmp_path; no
buildkitd is started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audio_extract_localcluster import buildkit

DOCKERIGNORE = (
    """\
# comments and blank lines are no patterns (a file called "#notes.txt" stays)
#notes.txt

tests
"""
    "   \n"  # whitespace only
    """\
docs/
/dist
**/__pycache__
**/*.pyc
*.log
build/*.tmp
conf?.ini
*.md
!README.md
"""
)
PATTERN_LINES = 10

INCLUDED = {
    ".dockerignore",
    "Dockerfile",
    "#notes.txt",
    "README.md",  # excluded by *.md, brought back by the later !README.md
    "pyproject.toml",
    "pkg/__init__.py",
    "pkg/mod.py",
    "pkg/NOTES.md",  # *.md: `*` does not cross `/`
    "pkg/app.log",  # *.log likewise
    "pkg/tests/test_inner.py",  # `tests` is anchored at the root
    "build/keep.txt",
    "build/sub/deep.tmp",  # build/*.tmp: one level only
    "config.ini",  # conf?.ini: `?` is exactly one character
    "pkg/dist/data.bin",  # /dist is anchored at the root
}
EXCLUDED = {
    "CHANGES.md",
    "app.log",
    "top.pyc",  # **/*.pyc: `**/` also matches no directory at all
    "pkg/stale.pyc",
    "pkg/__pycache__/mod.cpython-311.pyc",
    "pkg/sub/__pycache__/x.cpython-311.pyc",
    "tests/test_a.py",  # an excluded directory excludes everything below it
    "tests/deep/nested/file.txt",
    "docs/index.html",  # `docs/`: the trailing slash names the same directory
    "docs/api/page.html",
    "dist/pkg.whl",
    "build/out.tmp",
    "conf1.ini",
}

BASE = "sha256:" + "a" * 64


def make_repo(root: Path, files: set[str], dockerignore: str | None = DOCKERIGNORE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}\n")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    if dockerignore is not None:
        (root / ".dockerignore").write_text(dockerignore)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", INCLUDED | EXCLUDED)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("buildkitd", "buildctl", "runc"):
        (d / name).write_bytes(f"fake {name}\n".encode())
    return d


def rels(repo: Path) -> list[str]:
    return [p.relative_to(repo).as_posix() for p in buildkit.context_files(repo)]


# -- .dockerignore ---------------------------------------------------------------------------------


def test_comments_and_blank_lines_are_no_rules(repo: Path) -> None:
    rules = buildkit.dockerignore(repo)
    assert len(rules) == PATTERN_LINES
    assert [exclude for exclude, _ in rules] == [True] * (PATTERN_LINES - 1) + [False]


def test_no_dockerignore_is_no_rules(tmp_path: Path) -> None:
    assert buildkit.dockerignore(tmp_path) == []


@pytest.mark.parametrize("rel", sorted(INCLUDED))
def test_a_path_the_rules_keep(repo: Path, rel: str) -> None:
    assert not buildkit._excluded(rel, buildkit.dockerignore(repo))


@pytest.mark.parametrize("rel", sorted(EXCLUDED))
def test_a_path_the_rules_exclude(repo: Path, rel: str) -> None:
    assert buildkit._excluded(rel, buildkit.dockerignore(repo))


def test_directories_themselves_match(repo: Path) -> None:
    rules = buildkit.dockerignore(repo)
    for directory in ("tests", "docs", "dist", "pkg/__pycache__", "a/b/c/__pycache__"):
        assert buildkit._excluded(directory, rules), directory
    for directory in ("pkg", "build", "pkg/tests", "testsuite", "documentation"):
        assert not buildkit._excluded(directory, rules), directory


def test_the_last_matching_line_wins(tmp_path: Path) -> None:
    make_repo(tmp_path, set(), "*.md\n!README.md\nREADME.md\n!CHANGES.md\n")
    rules = buildkit.dockerignore(tmp_path)
    assert buildkit._excluded("README.md", rules)
    assert not buildkit._excluded("CHANGES.md", rules)
    assert buildkit._excluded("OTHER.md", rules)


def test_context_files_are_exactly_the_kept_files(repo: Path) -> None:
    files = rels(repo)
    assert set(files) == INCLUDED
    assert len(files) == len(set(files))


def test_context_files_without_dockerignore_are_every_file(tmp_path: Path) -> None:
    make_repo(tmp_path, {"a.py", "sub/b.py", "sub/__pycache__/b.pyc"}, dockerignore=None)
    assert set(rels(tmp_path)) == {"Dockerfile", "a.py", "sub/b.py", "sub/__pycache__/b.pyc"}


def test_a_negated_line_brings_back_a_file_inside_an_excluded_directory(tmp_path: Path) -> None:
    make_repo(tmp_path, {"docs/a.md", "docs/api/keep.md", "docs/api/other.md", "src/x.py"},
              "docs\n!docs/api/keep.md\n")  # fmt: skip
    assert set(rels(tmp_path)) == {".dockerignore", "Dockerfile", "docs/api/keep.md", "src/x.py"}


def test_context_files_come_in_the_same_order_every_time(repo: Path) -> None:
    assert rels(repo) == rels(repo)


# -- the context key -------------------------------------------------------------------------------


def key(repo: Path, bin_dir: Path, base: str = BASE) -> str:
    return buildkit.context_key(repo, base, bin_dir)


def test_the_same_inputs_give_the_same_key(repo: Path, bin_dir: Path, tmp_path: Path) -> None:
    assert key(repo, bin_dir) == key(repo, bin_dir)
    # and an identical copy elsewhere too (paths count relative to the repository)
    copy = make_repo(tmp_path / "copy", INCLUDED | EXCLUDED)
    assert key(copy, bin_dir) == key(repo, bin_dir)


@pytest.mark.parametrize("rel", ["pkg/mod.py", "README.md", "pkg/NOTES.md", "#notes.txt", ".dockerignore"])
def test_editing_a_file_in_the_context_changes_the_key(repo: Path, bin_dir: Path, rel: str) -> None:
    before = key(repo, bin_dir)
    (repo / rel).write_text((repo / rel).read_text() + "# edited\n")
    assert key(repo, bin_dir) != before


@pytest.mark.parametrize(
    "rel", ["tests/test_a.py", "pkg/__pycache__/mod.cpython-311.pyc", "CHANGES.md", "docs/index.html"]
)
def test_editing_an_excluded_file_keeps_the_key(repo: Path, bin_dir: Path, rel: str) -> None:
    before = key(repo, bin_dir)
    (repo / rel).write_text("something else entirely\n")
    assert key(repo, bin_dir) == before


def test_a_new_file_counts_only_inside_the_context(repo: Path, bin_dir: Path) -> None:
    before = key(repo, bin_dir)
    (repo / "tests" / "new_test.py").write_text("x = 1\n")
    (repo / "pkg" / "__pycache__" / "new.pyc").write_bytes(b"\0")
    assert key(repo, bin_dir) == before
    (repo / "pkg" / "new.py").write_text("x = 1\n")
    assert key(repo, bin_dir) != before


def test_a_rename_changes_the_key(repo: Path, bin_dir: Path) -> None:
    before = key(repo, bin_dir)
    (repo / "pkg" / "mod.py").rename(repo / "pkg" / "mod2.py")
    assert key(repo, bin_dir) != before


def test_a_mode_change_changes_the_key_and_an_mtime_change_does_not(repo: Path, bin_dir: Path) -> None:
    before = key(repo, bin_dir)
    os.utime(repo / "pkg" / "mod.py", ns=(1, 1))
    assert key(repo, bin_dir) == before
    (repo / "pkg" / "mod.py").chmod(0o755)
    assert key(repo, bin_dir) != before


def test_an_edit_undone_gives_the_old_key_back(repo: Path, bin_dir: Path) -> None:
    before = key(repo, bin_dir)
    original = (repo / "pkg" / "mod.py").read_text()
    (repo / "pkg" / "mod.py").write_text("changed\n")
    assert key(repo, bin_dir) != before
    (repo / "pkg" / "mod.py").write_text(original)
    assert key(repo, bin_dir) == before


def test_the_dockerfile_counts_even_when_dockerignore_excludes_it(tmp_path: Path, bin_dir: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"app.py"}, "Dockerfile\n")
    assert "Dockerfile" not in rels(repo)
    before = key(repo, bin_dir)
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY app.py /\n")
    assert key(repo, bin_dir) != before


def test_the_base_digest_and_the_buildkit_binaries_count(repo: Path, bin_dir: Path) -> None:
    before = key(repo, bin_dir)
    assert key(repo, bin_dir, "sha256:" + "b" * 64) != before
    os.utime(bin_dir / "buildctl", ns=(1, 1))  # a rebuilt binary: new mtime
    after_touch = key(repo, bin_dir)
    assert after_touch != before
    (bin_dir / "runc").write_bytes(b"a different, longer runc\n")
    assert key(repo, bin_dir) not in (before, after_touch)


def test_a_file_symlink_counts_by_its_target(repo: Path, bin_dir: Path) -> None:
    (repo / "pkg" / "a.txt").write_text("same\n")
    (repo / "pkg" / "b.txt").write_text("same\n")
    (repo / "pkg" / "link").symlink_to("a.txt")
    before = key(repo, bin_dir)
    (repo / "pkg" / "link").unlink()
    (repo / "pkg" / "link").symlink_to("b.txt")  # same content behind it, another target
    assert key(repo, bin_dir) != before


def test_a_directory_symlink_counts_by_its_target(repo: Path, bin_dir: Path) -> None:
    (repo / "a").mkdir()
    (repo / "b").mkdir()
    (repo / "a" / "f").write_text("same\n")
    (repo / "b" / "f").write_text("same\n")
    (repo / "current").symlink_to("a")
    assert "current" in rels(repo)
    before = key(repo, bin_dir)
    (repo / "current").unlink()
    (repo / "current").symlink_to("b")
    assert key(repo, bin_dir) != before
