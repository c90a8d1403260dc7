"""Group guidance text: finding the templates, rendering each group's guidance, and the small
Markdown subset it is written in. Shared by `windows` (calendars, instructions) and `guidance`
(briefings), so neither job imports the other.

Group guidance comes from Jinja2 templates (`<group>.md.j2`, e.g. `control.md.j2`) shipped in
`evalkit/delivery/templates/guidance/`; a folder given by `--templates` or `[delivery] templates`
(relative to the design file) overrides them file by file.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from evalkit.delivery.instructions import group_windows
from evalkit.errors import ConfigError, InputError
from evalkit.io.files import safe_file_name
from evalkit.io.html import add_group_helpers, template_cache
from evalkit.trial.design import TrialDesign

PACKAGE_TEMPLATES = Path(__file__).parent / "templates" / "guidance"


@dataclass(frozen=True)
class GuidanceTemplates:
    """Where guidance templates are looked up: an optional override folder, then the defaults."""

    override: Path | None = None

    @classmethod
    def for_design(cls, design: TrialDesign, manifest: dict,
                   option: Path | None = None) -> GuidanceTemplates:
        """`--templates` wins; else `[delivery] templates` relative to the design file."""
        if option is not None:
            if not Path(option).is_dir():
                raise InputError("templates folder not found", file=option)
            return cls(Path(option))
        configured = design.delivery.templates
        if configured is None:
            return cls()
        folder = Path(manifest["config"]["path"]).parent / configured
        if not folder.is_dir():
            raise ConfigError(f"key 'delivery.templates': folder {folder} not found")
        return cls(folder)

    def environment(self, html: bool) -> jinja2.Environment:
        return _environment(self.override, html)

    def render(self, name: str, html: bool = False, **context) -> str:
        """Render a template; template mistakes become ConfigErrors naming the file."""
        try:
            return self.environment(html).get_template(name).render(**context)
        except jinja2.TemplateSyntaxError as error:
            raise ConfigError(f"template {error.filename or name}, line {error.lineno}: "
                              f"{error.message}") from None
        except jinja2.UndefinedError as error:
            raise ConfigError(f"template {name}: {error.message}") from None


@functools.lru_cache(maxsize=8)
def _environment(override: Path | None, html: bool) -> jinja2.Environment:
    """One Jinja environment per folder and mode, so each template compiles once."""
    folders = [str(override)] if override else []
    loader = jinja2.FileSystemLoader([*folders, str(PACKAGE_TEMPLATES)])
    environment = jinja2.Environment(loader=loader, autoescape=html,
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     finalize=None if html else markdown_text,
                                     bytecode_cache=template_cache())
    environment.filters["inline"] = inline_html
    environment.filters["blocks"] = markdown_blocks
    environment.filters["file_name"] = safe_file_name
    return add_group_helpers(environment)


def template_name(design: TrialDesign, group: str, templates: GuidanceTemplates) -> str:
    """`<group in snake_case>.md.j2` if it exists, else the control or treatment template."""
    specific = re.sub(r"[^a-z0-9]+", "_", group.lower()).strip("_") + ".md.j2"
    folders = [f for f in (templates.override, PACKAGE_TEMPLATES) if f is not None]
    if any((folder / specific).is_file() for folder in folders):
        return specific
    return "control.md.j2" if group == design.control_arm else "treatment.md.j2"


def render_group_guidance(design: TrialDesign, group: str,
                          templates: GuidanceTemplates) -> Markup:
    """The guidance text (Markdown, user text HTML-escaped) a group's staff receive."""
    text = templates.render(
        template_name(design, group, templates), group=group, trial=design.trial.name,
        programme=design.delivery.programme,
        windows=group_windows(design, group), control=group == design.control_arm,
        you_are="Your PDU is" if design.trial.unit == "pdu" else "You are").strip() + "\n"
    return Markup(text)  # user text in it is escaped by markdown_text


_SPECIAL = re.compile(r"[&<>\[\]]")  # what markdown_text escapes


def markdown_text(value: object) -> object:
    """Every value a Markdown template prints: HTML and link brackets escaped as entities, so
    names can never become markup in a Markdown viewer (Markup, e.g. rendered guidance, is
    already escaped and passes as it is)."""
    if isinstance(value, Markup) or not isinstance(value, str) or not _SPECIAL.search(value):
        return value
    text = html.escape(value, quote=False)
    return text.replace("[", "&#91;").replace("]", "&#93;")


_HTML_ENTITIES = (("&", "&amp;"), (">", "&gt;"), ("<", "&lt;"), ("'", "&#39;"), ('"', "&#34;"))


def html_text(text: str) -> str:
    """Text escaped for HTML exactly as markupsafe's `escape` (Jinja's autoescape) does it,
    without making a Markup object per value."""
    for character, entity in _HTML_ENTITIES:
        if character in text:
            text = text.replace(character, entity)
    return text


def inline_html(text: str) -> Markup:
    """Escape text (Markdown entities decoded first), then turn **bold** into <strong>."""
    escaped = str(escape(html.unescape(str(text))))
    return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))


def markdown_blocks(text: str) -> list[dict]:
    """The small Markdown subset of the guidance: headings, paragraphs and bullet lists."""
    blocks: list[dict] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if lines and lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            blocks.append({"kind": "heading", "level": min(level + 1, 6),
                           "text": lines[0].lstrip("#").strip()})
            lines = lines[1:]
        bullets = [line[2:] for line in lines if line.startswith(("- ", "* "))]
        prose = [line for line in lines if not line.startswith(("- ", "* "))]
        if prose:
            blocks.append({"kind": "paragraph", "text": " ".join(prose)})
        if bullets:
            blocks.append({"kind": "list", "items": bullets})
    return blocks
