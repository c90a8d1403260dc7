"""Shared HTML pieces: one Jinja environment factory, the template cache, group tags.

Every page and plot shows a group the same way: its name as text (so it reads without colour),
a GOV.UK-style tag whose border pattern also differs (double, solid, dashed, dotted), and in
plots one colour-blind-safe colour (Okabe-Ito hues), marker and line style per group.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2.bccache import Bucket
from markupsafe import Markup, escape

from evalkit.io.figures import (  # noqa: F401 (the group look, shared with pages)
    CONTROL,
    EARLY_ADOPTER,
    GROUP_STYLES,
    NON_RANDOMISED_COLOUR,
    NOT_IN_TRIAL,
    RANDOMISED_COLOUR,
    TREATMENT,
    GroupStyle,
    figure_to_svg,
    group_style,
    plot_style,
    slug,
)


def group_tag(name: Any, suffix: str = "") -> Markup:
    """A GOV.UK-style tag: <strong class="group group-control">Control</strong>."""
    style = group_style(name)
    text = escape(str(name)) + (escape(f" {suffix}") if suffix else "")
    return Markup(f'<strong class="group group-{style.slug}">{text}</strong>')


def group_css() -> Markup:
    """CSS for .group tags, one rule per known group plus each slug of another design's arms."""
    rules = [".group { display: inline-block; padding: 0.1rem 0.45rem; font-weight: bold; "
             "line-height: 1.25; border: 2px solid currentColor; border-left-width: 0.45rem; "
             "white-space: nowrap; max-width: 100%; overflow-wrap: anywhere; }"]
    for style in GROUP_STYLES:
        rules.append(f".group-{style.slug} {{ color: {style.tag_text}; "
                     f"background: {style.tag_fill}; border-style: {style.border}; }}")
    rules.append("@media print { .group { -webkit-print-color-adjust: exact; "
                 "print-color-adjust: exact; } }")
    return Markup("\n".join(rules))


def yes_no(value: Any) -> str:
    """True/False (also numpy and 'True'/'False' text) -> 'Yes'/'No'; anything else as text."""
    text = str(value)
    if text in {"True", "False"}:
        return "Yes" if text == "True" else "No"
    return "" if text in {"nan", "NaT", "None", "<NA>"} else text


def html_environment(loader: jinja2.BaseLoader, autoescape: bool = True,
                     filters: dict[str, Callable[..., Any]] | None = None,
                     **options: Any) -> jinja2.Environment:
    """A Jinja environment with evalkit's defaults and the shared group helpers."""
    settings = {"trim_blocks": True, "lstrip_blocks": True, **options}
    environment = jinja2.Environment(loader=loader, autoescape=autoescape,
                                     undefined=jinja2.StrictUndefined,
                                     bytecode_cache=template_cache(), **settings)
    add_group_helpers(environment)
    environment.filters.update(filters or {})
    return environment


def package_environment(package: str, folder: str = "templates",
                        filters: dict[str, Callable[..., Any]] | None = None) -> jinja2.Environment:
    """The environment for a package's own HTML templates."""
    return html_environment(jinja2.PackageLoader(package, folder), filters=filters)


def add_group_helpers(environment: jinja2.Environment) -> jinja2.Environment:
    """Give templates `group_css()`, `| group_tag`, `| slug` and `| yes_no`."""
    environment.globals["group_css"] = group_css
    environment.filters.update({"group_tag": group_tag, "slug": slug, "yes_no": yes_no})
    return environment


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between runs, in a folder only this user can write.

    An entry is found by the template's name and file and by everything about the environment
    that changes the compiled code (escaping, finalize, whitespace, filter names), and is used
    only when the template's source is the one it was compiled from (Jinja's checksum), so an
    edited template is compiled afresh. A cache that can't be read or written is compiling:
    an unreadable entry is ignored, a failed write is dropped.
    """

    def get_bucket(self, environment: jinja2.Environment, name: str, filename: str | None,
                   source: str) -> Bucket:
        key = self.get_cache_key(f"{environment_fingerprint(environment)}|{name}", filename)
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - a damaged entry of any kind: compile instead
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def environment_fingerprint(environment: jinja2.Environment) -> str:
    """What, besides the source, decides a template's compiled code in this environment."""
    def name_of(value: Any) -> str:
        return value if isinstance(value, bool | None) else \
            f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"

    return repr((jinja2.__version__, name_of(environment.autoescape),
                 name_of(environment.finalize), environment.trim_blocks,
                 environment.lstrip_blocks, environment.keep_trailing_newline,
                 environment.newline_sequence, environment.optimized,
                 environment.block_start_string, environment.variable_start_string,
                 environment.comment_start_string, environment.line_statement_prefix,
                 sorted(environment.extensions), sorted(environment.filters),
                 sorted(environment.tests)))


TEMPLATE_CACHE_ENV = "EVALKIT_TEMPLATE_CACHE"  # a folder, or "off"


@functools.lru_cache(maxsize=1)
def template_cache() -> TemplateCache | None:
    """The per-user cache of compiled templates ($EVALKIT_TEMPLATE_CACHE, else
    $XDG_CACHE_HOME/evalkit/templates or ~/.cache/evalkit/templates); None (compile every
    time) when it is switched off or its folder is missing, not ours or open to others."""
    setting = os.environ.get(TEMPLATE_CACHE_ENV, "")
    if setting.lower() in {"off", "0", "no", "false"}:
        return None
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = Path(setting) if setting else Path(base) / "evalkit" / "templates"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.lstat()
    except (OSError, RuntimeError):  # RuntimeError: no home folder to find
        return None
    private = stat.S_ISDIR(status.st_mode) and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if not private or (hasattr(os, "getuid") and status.st_uid != os.getuid()):
        return None
    return TemplateCache(str(folder), "%s.jinja")
