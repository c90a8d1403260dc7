"""The briefings' lists of people are made in Python, one line per person: each line must be
what the templates' per-person loops printed, escaping included."""

from __future__ import annotations

import jinja2
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from evalkit.delivery.guidance import _course_people
from evalkit.delivery.guidance_text import html_text, markdown_text

# The loops the shipped templates had before the lists were made in Python.
MARKDOWN_LOOP = ("{% for person in course.people -%}\n- {{ person.name }} ({{ person.grade }}"
                 "{% if person.pod %}, {{ person.pod }}{% endif %})\n{% endfor %}")
HTML_LOOP = ('{% for person in course.people %}<li>{{ person.name }} <span class="muted">'
             '({{ person.grade }}{% if person.pod %}, {{ person.pod }}{% endif %})</span></li>\n'
             "{% endfor %}")
TEXT = st.text(alphabet=st.sampled_from("ab <>&'\"[]#*é\n"), max_size=6)
PEOPLE = st.lists(st.fixed_dictionaries({"name": TEXT, "grade": TEXT, "pod": TEXT}),
                  max_size=6)


def _loop(source: str, html: bool, people: list[dict]) -> str:
    environment = jinja2.Environment(autoescape=html, keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined,
                                     finalize=None if html else markdown_text)
    return environment.from_string(source).render(course={"people": people})


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_html_text_escapes_as_markupsafe_does(text: str) -> None:
    assert html_text(text) == str(escape(text))


@settings(max_examples=300, deadline=None)
@given(PEOPLE)
def test_people_lines_are_what_the_template_loops_printed(people: list[dict]) -> None:
    course = _course_people(None, people)
    assert course["people"] is people
    assert str(course["people_markdown"]) == _loop(MARKDOWN_LOOP, False, people)
    assert str(course["people_html"]) == _loop(HTML_LOOP, True, people)
