"""The per-user cache of compiled Jinja templates: the same output with or without it, never a
stale or foreign entry, and a broken cache is just compiling."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import pytest

from evalkit.io import html
from evalkit.io.html import TEMPLATE_CACHE_ENV, TemplateCache, html_environment, template_cache

TEMPLATE = "{% for name in names %}<li>{{ name }}</li>{% endfor %}"


@pytest.fixture
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder, used by every environment made in the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(TEMPLATE_CACHE_ENV, str(folder))
    template_cache.cache_clear()
    yield folder
    template_cache.cache_clear()


def _render(folder: Path, autoescape: bool = True) -> str:
    environment = html_environment(jinja2.FileSystemLoader(str(folder)), autoescape=autoescape)
    return environment.get_template("page.html.j2").render(names=["<b>", "Ann & Bo"])


def _templates(tmp_path: Path, text: str = TEMPLATE) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    (folder / "page.html.j2").write_text(text, encoding="utf-8")
    return folder


def test_output_is_the_same_with_and_without_the_cache(
        tmp_path: Path, cache_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _templates(tmp_path)
    cold, warm = _render(folder), _render(folder)  # the second is loaded from the cache
    assert list(cache_folder.glob("*.jinja"))
    monkeypatch.setenv(TEMPLATE_CACHE_ENV, "off")
    template_cache.cache_clear()
    assert template_cache() is None
    assert cold == warm == _render(folder) == "<li>&lt;b&gt;</li><li>Ann &amp; Bo</li>"


def test_an_edited_template_is_compiled_afresh(tmp_path: Path, cache_folder: Path) -> None:
    folder = _templates(tmp_path)
    assert _render(folder).startswith("<li>")
    _templates(tmp_path, TEMPLATE.replace("li>", "p>"))
    assert _render(folder) == "<p>&lt;b&gt;</p><p>Ann &amp; Bo</p>"


def test_an_entry_compiled_for_other_settings_is_not_used(tmp_path: Path,
                                                          cache_folder: Path) -> None:
    folder = _templates(tmp_path)
    assert "&lt;b&gt;" in _render(folder, autoescape=True)
    assert _render(folder, autoescape=False) == "<li><b></li><li>Ann & Bo</li>"
    assert len(list(cache_folder.glob("*.jinja"))) == 2


def test_a_damaged_entry_is_compiled_afresh(tmp_path: Path, cache_folder: Path) -> None:
    folder = _templates(tmp_path)
    expected = _render(folder)
    for entry in cache_folder.glob("*.jinja"):
        entry.write_bytes(entry.read_bytes()[:12] + b"\x00garbage")
    assert _render(folder) == expected
    for entry in cache_folder.glob("*.jinja"):
        entry.write_bytes(b"")
    assert _render(folder) == expected


def test_an_unwritable_cache_is_just_compiling(tmp_path: Path, cache_folder: Path) -> None:
    folder = _templates(tmp_path)
    expected = _render(folder)
    broken = TemplateCache(str(tmp_path / "missing" / "folder"))  # writes fail: dropped
    environment = html_environment(jinja2.FileSystemLoader(str(folder)))
    environment.bytecode_cache = broken
    assert environment.get_template("page.html.j2").render(names=["<b>", "Ann & Bo"]) == expected


def test_no_cache_in_a_folder_others_can_write_or_that_is_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    for folder in (shared, not_a_folder):
        monkeypatch.setenv(TEMPLATE_CACHE_ENV, str(folder))
        template_cache.cache_clear()
        assert template_cache() is None
    template_cache.cache_clear()
    folder = _templates(tmp_path)
    assert _render(folder) == "<li>&lt;b&gt;</li><li>Ann &amp; Bo</li>"  # compiled instead
    template_cache.cache_clear()


def test_the_default_folder_is_private_to_the_user(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEMPLATE_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    template_cache.cache_clear()
    cache = template_cache()
    template_cache.cache_clear()
    assert cache is not None
    folder = Path(cache.directory)
    assert folder == tmp_path / "xdg" / "evalkit" / "templates"
    assert folder.stat().st_mode & 0o077 == 0
    assert html.environment_fingerprint(html_environment(jinja2.DictLoader({}))) != \
        html.environment_fingerprint(html_environment(jinja2.DictLoader({}), autoescape=False))
