"""Every field path of the config model, as the docs name them.

This is the one place that introspects the config model's classes (the schema that
:mod:`secretsync.config.schema` records on each model): whoever changes how the model is
built ports :func:`config_field_paths` and nothing else.
"""

from __future__ import annotations

from secretsync.config.model import Config
from secretsync.config.schema import Custom, Kind, MapOf, Model, Nested, NullIs, Opt, Seq, kinds_of


def config_field_paths() -> list[str]:
    """The path of every leaf field of ``sync.yaml``, in model order, as YAML spells it.

    A list item is ``[]`` (``outputs[].secrets[].id``), a mapping's key ``<name>``
    (``notify.<name>.signal``); a field whose YAML key is not its Python name
    (``as``, ``stale_after``) appears under its YAML key. Sections themselves
    (``aws``, ``outputs[].sasl``) are not listed, only the fields inside them.
    """
    paths: list[str] = []

    def model(cls: type[Model], prefix: str) -> None:
        for field in kinds_of(cls):
            path = prefix + field.key
            if not kind(field.kind, path):
                paths.append(path)

    def kind(k: Kind | None, path: str) -> bool:
        """Walk into ``k``; True when a model was found inside (``path`` is a section)."""
        if isinstance(k, Nested):
            model(k.cls, path + ".")
            return True
        if isinstance(k, Opt | NullIs | Custom):
            return kind(k.inner, path)
        if isinstance(k, MapOf):
            return kind(k.value, path + ".<name>")
        if isinstance(k, Seq):
            return kind(k.item, path + "[]")
        return False

    model(Config, "")
    return list(dict.fromkeys(paths))
