"""Plain command lines parsed without typer's per-parameter pydantic validators (issue 13).

Typer 0.29 coerces every parameter, given or not, through a pydantic TypeAdapter: importing
pydantic and building them took about 0.15 s of `evalkit analyse --model cr2` (23 parameters)
before any work. `parse` reads a command line only when it is plainly valid: known long
options (`--name value`, `--name=value`, flags), positional arguments in order, values of
the simple types the commands use (text, paths, integers, decimals, repeatable lists), no
option callbacks, prompts, environment variables or constraints it cannot check. It returns
the keyword arguments typer would pass, or None for anything else (help, a typo, a bad
value, a rare form), which typer then parses, so every usage message stays typer's own.
tests/test_cli_fastparse.py compares the two on many command lines.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# ParameterInfo settings that change how typer reads a value: with any set, typer parses.
_UNCHECKED = ("parser", "callback", "envvar", "prompt", "formats", "path_type", "resolve_path",
              "exists", "writable", "clamp", "count", "allow_dash")


class Declined(Exception):
    """The command line is not plainly valid: typer parses it."""


def parse(function: Callable[..., Any], params: list[Any], args: list[str]) -> dict | None:
    """The keyword arguments of `function` for command line `args` (after the command's
    name), from the parameters typer declared for it (`params`), or None to leave it to
    typer."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
        readers = {param.name: _reader(hints.get(param.name), param) for param in params}
        given = _split(params, args)
        return {param.name: _value(param, readers[param.name], given.get(param.name))
                for param in params}
    except Declined:
        return None


def _split(params: list[Any], args: list[str]) -> dict[str, Any]:
    """Raw text per parameter name: a list for a repeatable option, True/False for a flag."""
    options = {opt: (param, True) for param in params if param.param_type_name == "option"
               for opt in param.opts}
    options |= {opt: (param, False) for param in params if param.param_type_name == "option"
                for opt in param.secondary_opts}
    positional = [param for param in params if param.param_type_name == "argument"]
    given: dict[str, Any] = {}
    pending = list(args)
    while pending:
        token = pending.pop(0)
        if not token.startswith("-"):
            if not positional or not token:
                raise Declined
            given[positional.pop(0).name] = token
            continue
        name, equals, attached = token.partition("=")
        if name not in options or not name.startswith("--"):
            raise Declined  # --help, a short or unknown option, "--", "-"
        param, primary = options[name]
        if param.is_flag:
            if equals:
                raise Declined
            given[param.name] = primary
            continue
        if not equals and (not pending or pending[0].startswith("-")):
            raise Declined
        value = attached if equals else pending.pop(0)
        if not value:
            raise Declined
        if param.multiple:
            given.setdefault(param.name, []).append(value)
        else:
            given[param.name] = value
    return given


def _value(param: Any, read: Callable[[str], Any], raw: Any) -> Any:
    """What typer passes for a parameter: its default when not given, else the value read."""
    if raw is None:
        if param.required or (param.multiple and param.default is not None):
            raise Declined
        return param.default
    if isinstance(raw, bool):  # a flag
        return raw
    if param.multiple:
        return [read(text) for text in raw]
    return read(raw)


def _reader(hint: Any, param: Any) -> Callable[[str], Any]:
    """How one parameter's text becomes its value, from its annotation; Declined for types
    or settings this module does not read exactly as typer does."""
    if param.nargs != 1 or getattr(param, "count", False):
        raise Declined
    if typing.get_origin(hint) is not typing.Annotated:
        raise Declined
    kind, *extras = typing.get_args(hint)
    info = next((extra for extra in extras if hasattr(extra, "param_decls")), None)
    if info is None or any(getattr(info, name, None) for name in _UNCHECKED) \
            or not (info.file_okay and info.dir_okay and info.readable):
        raise Declined
    kind = _without_none(kind)
    if typing.get_origin(kind) is list:
        if not param.multiple:
            raise Declined
        (kind,) = typing.get_args(kind)
    elif param.multiple:
        raise Declined
    if getattr(param, "is_flag", False):
        if kind is not bool:
            raise Declined
        return bool
    return _read_as(kind, info.min, info.max)


def _read_as(kind: Any, low: float | None, high: float | None) -> Callable[[str], Any]:
    if kind is str and low is None and high is None:
        return str
    if kind is Path and low is None and high is None:
        return _path
    if kind in (int, float):
        pattern = _INTEGER if kind is int else _DECIMAL

        def number(text: str) -> Any:
            if not pattern.fullmatch(text):
                raise Declined
            value = kind(text)
            if (low is not None and value < low) or (high is not None and value > high):
                raise Declined
            return value

        return number
    raise Declined


def _path(text: str) -> Path:
    """A path as typer reads one: as given; one that exists but cannot be read is typer's
    error to report."""
    if os.path.exists(text) and not os.access(text, os.R_OK):
        raise Declined
    return Path(text)


def _without_none(kind: Any) -> Any:
    """`X | None` -> X."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(rest) != 1:
            raise Declined
        return rest[0]
    return kind
