"""Every field path of the config model, as the docs name them.

This is the one place that introspects the config model's classes (today pydantic
models): whoever changes how the model is built ports :func:`config_field_paths`
and nothing else.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from secretsync.config.model import Config


def config_field_paths() -> list[str]:
    """The path of every leaf field of ``sync.yaml``, in model order, as YAML spells it.

    A list item is ``[]`` (``outputs[].secrets[].id``), a mapping's key ``<name>``
    (``notify.<name>.signal``); a field whose YAML name is not its Python name (an
    alias: ``as``, ``stale_after``) appears under its YAML name. Sections themselves
    (``aws``, ``outputs[].sasl``) are not listed, only the fields inside them.
    """
    paths: list[str] = []

    def model(cls: type[BaseModel], prefix: str) -> None:
        for name, field in cls.model_fields.items():
            path = prefix + (field.alias or name)
            if not annotation(field.annotation, path):
                paths.append(path)

    def annotation(tp: Any, path: str) -> bool:
        """Walk into ``tp``; True when a model was found inside (``path`` is a section)."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            model(tp, path + ".")
            return True
        if origin is typing.Annotated:
            return annotation(args[0], path)
        if origin in (typing.Union, types.UnionType):
            return any([annotation(arg, path) for arg in args])
        if isinstance(origin, type) and issubclass(origin, Mapping):
            return annotation(args[1], path + ".<name>")
        if isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str:
            return any([annotation(arg, path + "[]") for arg in args if arg is not Ellipsis])
        return False

    model(Config, "")
    return list(dict.fromkeys(paths))
