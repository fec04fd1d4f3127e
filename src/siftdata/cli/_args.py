"""Derive command-line options from config dataclasses, so no default or help is written twice.

Each field declared with :func:`siftdata._config.option` becomes ``--field-name`` with the field's
default, help and choices; the config's own ``__post_init__`` validates the values, so a bad option
fails before any data is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

__all__ = ["add_config_options", "config_from_args"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _comma_list(item: type) -> Any:
    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            return tuple(item(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {item.__name__}s, got {text!r}"
            ) from None

    return parse


def _optional(kinds: tuple[type, ...]) -> Any:
    """A value that may be 'none', a number, or (if str is allowed) a word such as 'logC'."""

    def parse(text: str) -> Any:
        if text.strip().lower() == "none":
            return None
        try:
            return float(text)
        except ValueError:
            if str in kinds:
                return text.strip()
            raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None

    return parse


def _parser_kwargs(hint: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is int:
        return {"type": int}
    if hint is float:
        return {"type": float}
    if hint is str:
        return {"type": str}
    if origin is tuple:
        return {"type": _comma_list(args[0]), "metavar": "A,B,..."}
    if origin in (typing.Union, types.UnionType):
        return {"type": _optional(tuple(a for a in args if a is not type(None)))}
    raise TypeError(f"no command-line form for a field of type {hint!r}")


def _shown(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(str(v) for v in default) or "none"
    return "none" if default is None else str(default)


def _cli_fields(cls: type, include: tuple[str, ...] | None, exclude: tuple[str, ...]) -> list:
    return [
        f
        for f in dataclasses.fields(cls)
        if "help" in f.metadata
        and f.metadata.get("cli", True)
        and f.name not in exclude
        and (include is None or f.name in include)
    ]


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    include: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add one option per CLI field of dataclass ``cls`` to ``parser``.

    ``include``/``exclude`` pick the fields; ``defaults`` overrides a field's default for this
    command only (e.g. the demo's fixed recipe).
    """
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    for f in _cli_fields(cls, include, exclude):
        meta, default = f.metadata, (defaults or {}).get(f.name, f.default)
        help_text = meta["help"].replace("%", "%%")
        if hints[f.name] is bool:
            help_text = f"turn off: {help_text}" if default else help_text
            flag = f"--no-{f.name.replace('_', '-')}" if default else _flag(f.name)
            action = "store_false" if default else "store_true"
            group.add_argument(flag, dest=f.name, action=action, default=default, help=help_text)
            continue
        kwargs = _parser_kwargs(hints[f.name])
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        help_text += f" (default: {_shown(default)})"
        group.add_argument(_flag(f.name), dest=f.name, default=default, help=help_text, **kwargs)


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the parsed options; fields the command has no option for keep defaults."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    values.update(overrides)
    return cls(**values)
