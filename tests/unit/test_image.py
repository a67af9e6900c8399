"""The node image's base is made from the Debian mirror the host's apt already uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.images.build import DEFAULT_MIRROR, debian_mirror


def _apt(tmp_path: Path, sources_list: str = "", **d: str) -> Path:
    (tmp_path / "sources.list.d").mkdir(parents=True)
    (tmp_path / "sources.list").write_text(sources_list)
    for name, text in d.items():
        (tmp_path / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return tmp_path


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv("BGPLAB_DEBIAN_MIRROR", raising=False)


def test_a_deb822_source_for_the_suite_is_the_mirror(tmp_path) -> None:
    apt = _apt(tmp_path, debian_sources=(
        "Types: deb\nURIs: http://mirror.example.net/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example.net/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"))
    assert debian_mirror(apt) == ("http://mirror.example.net/debian", "the host's apt sources")


def test_a_one_line_source_with_options_is_read_and_other_endings_are_not(tmp_path) -> None:
    apt = _apt(tmp_path, "# deb http://old.example/debian bookworm main\n"
                         "deb [arch=amd64 signed-by=/k.gpg] https://local.example/debian bookworm main  # ours\n",
               other_list_disabled="deb http://nope.example/debian bookworm main\n")
    assert debian_mirror(apt)[0] == "https://local.example/debian"


def test_an_ubuntu_host_or_none_falls_back_to_debian_and_the_environment_wins(tmp_path, monkeypatch) -> None:
    apt = _apt(tmp_path, "deb http://archive.ubuntu.com/ubuntu noble main universe\n")
    mirror, why = debian_mirror(apt)
    assert mirror == DEFAULT_MIRROR and "no apt source" in why
    monkeypatch.setenv("BGPLAB_DEBIAN_MIRROR", "http://env.example/debian")
    assert debian_mirror(apt) == ("http://env.example/debian", "BGPLAB_DEBIAN_MIRROR")
