"""config/schema.py: the validator every sync.yaml model is built on."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator

import pytest

from secretsync.config.model import Config, parse_config
from secretsync.config.schema import (
    FrozenError,
    Invalid,
    Kind,
    Model,
    Nested,
)

OUT = {"path": "/o/a", "secrets": [{"id": "s"}]}


def _models_in(kind: Kind) -> Iterator[type[Model]]:
    if isinstance(kind, Nested):
        yield kind.cls
    for inner in (getattr(kind, name, None) for name in ("inner", "item", "value")):
        if isinstance(inner, Kind):
            yield from _models_in(inner)


def every_model() -> list[type[Model]]:
    seen: list[type[Model]] = []
    todo: list[type[Model]] = [Config]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for f in cls.__schema__:
            todo.extend(_models_in(f.kind))
    return seen


def test_the_walk_finds_the_nested_models() -> None:
    names = {cls.__name__ for cls in every_model()}
    assert {"Config", "OutputConfig", "SecretRef", "SaslConfig", "TlsServerConfig"} <= names
    assert len(names) >= 12


@pytest.mark.parametrize("cls", every_model(), ids=lambda cls: cls.__name__)
def test_every_model_refuses_an_unknown_key_and_names_the_allowed_ones(cls: type[Model]) -> None:
    with pytest.raises(Invalid) as info:
        cls.model_validate({"zz_unknown": 1})
    allowed = ", ".join(f.key for f in cls.__schema__)
    assert (("zz_unknown",), f"unknown field; allowed: {allowed}") in info.value.problems


def test_every_problem_is_reported_not_only_the_first() -> None:
    with pytest.raises(Invalid) as info:
        Config.model_validate({"poll": {"jitter": 9, "interval": "x"}, "outputs": [], "zz": 1})
    where = [loc for loc, _ in info.value.problems]
    assert ("poll", "interval") in where and ("poll", "jitter") in where
    assert ("outputs",) in where and ("zz",) in where


def test_config_objects_are_frozen_at_every_level_and_copy_by_value() -> None:
    config = parse_config({"outputs": [OUT], "notify": {"a": {"command": ["x"]}}})
    for obj, name in (
        (config, "poll"),
        (config.outputs[0], "mode"),
        (config.notify["a"], "retries"),
    ):
        with pytest.raises(FrozenError, match="frozen"):
            setattr(obj, name, None)
        with pytest.raises(FrozenError):
            delattr(obj, name)
    assert not hasattr(config, "__dict__")  # slotted
    assert copy.deepcopy(config) == config == pickle.loads(pickle.dumps(config))
    assert hash(config.aws) == hash(copy.copy(config.aws))
    assert config != parse_config({"outputs": [{**OUT, "mode": "0640"}]})
