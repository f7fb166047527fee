"""The validator behind every sync.yaml model: frozen slotted records and a schema. Pure.

A model is a class decorated with :func:`model`: a frozen, slotted record with
keyword-only construction (typed like a dataclass, without generating code at
import) whose fields each carry a *kind* (declared with :func:`spec`) saying
what the YAML value may be and how it becomes the field's value. Validation
walks the data once, collecting every problem (not just the first) as a
location (``("outputs", 1, "mode")``) and a message saying what is allowed;
:meth:`Model.model_validate` raises :class:`Invalid` with all of them, and
:mod:`secretsync.config.errors` turns that into the one message users see.

Rules every model follows: a key the model does not declare is an error naming
the allowed keys; a missing key without a default is an error; a model's own
cross-field check (its ``_check`` method, raising ValueError) runs only when
its fields are valid, and its message is reported at the model's location.
Instances are frozen: assigning raises :class:`FrozenError` (a ValueError).

This replaced pydantic: importing pydantic and building the models cost ≈ 14 MiB
and ≈ 0.2 s at every start (README, Performance); this costs ≈ 1 MiB and no
dependency.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, dataclass_transform

from secretsync.config.errors import brief

Loc = tuple[int | str, ...]
T = TypeVar("T")

# an empty list where at least one item is needed, by field name
_AT_LEAST_ONE = {
    "outputs": "at least one output is required",
    "secrets": "at least one secret is required",
    "command": "at least one word (the program to run) is required",
}


class Invalid(ValueError):
    """Validation failed; ``problems`` holds every (location, message), in data order."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class FrozenError(ValueError, AttributeError):
    """Raised on an assignment to a config object: they are frozen."""


class _Bad:
    """The result of a value that failed (its problem is already recorded)."""

    __slots__ = ()


BAD: Any = _Bad()


class Ctx:
    """One validation run: its problems and the context (``base_dir`` of relative paths)."""

    __slots__ = ("base_dir", "problems")

    def __init__(self, base_dir: object = None) -> None:
        self.base_dir = base_dir
        self.problems: list[tuple[Loc, str]] = []

    def fail(self, loc: Loc, message: str) -> Any:
        self.problems.append((loc, message))
        return BAD


# -- kinds: what a value may be ------------------------------------------------------------


class Kind:
    """What one value may be; :meth:`check` returns the value to keep, or BAD."""

    __slots__ = ()

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        raise NotImplementedError


def _range_text(ge: object, gt: object, le: object, lt: object) -> str:
    parts = [
        f"{word} {bound}"
        for word, bound in ((">=", ge), (">", gt), ("<=", le), ("<", lt))
        if bound is not None
    ]
    return " and ".join(parts)


class Number(Kind):
    """A number within bounds; ``whole``: an integer (a float like 3.0 or digits "3" too)."""

    __slots__ = ("ge", "gt", "le", "lt", "parse", "whole")

    def __init__(
        self,
        *,
        whole: bool = False,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        parse: Callable[[object], float] | None = None,
    ) -> None:
        self.whole, self.ge, self.gt, self.le, self.lt = whole, ge, gt, le, lt
        self.parse = parse  # a duration: its own parser, whose ValueError says what is allowed

    def _convert(self, value: object) -> float | int | None:
        if self.parse is not None:
            return self.parse(value)
        if isinstance(value, bool):
            return None
        if isinstance(value, str) and len(value) <= 100:
            try:
                value = float(value.strip()) if not self.whole else int(value.strip())
            except ValueError:
                return None
        if self.whole:
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return value if isinstance(value, int) else None
        return float(value) if isinstance(value, int | float) else None

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        try:
            number = self._convert(value)
        except ValueError as exc:
            return ctx.fail(loc, str(exc))
        if number is None:
            what = "a whole number" if self.whole else "a number"
            return ctx.fail(loc, f"expected {what}, got {brief(value)}")
        if (
            (self.ge is not None and not number >= self.ge)
            or (self.gt is not None and not number > self.gt)
            or (self.le is not None and not number <= self.le)
            or (self.lt is not None and not number < self.lt)
        ):
            bounds = _range_text(self.ge, self.gt, self.le, self.lt)
            return ctx.fail(loc, f"out of range: allowed {bounds}; got {brief(value)}")
        return number


class Str(Kind):
    """A string (YAML numbers are not strings here), its length bounded."""

    __slots__ = ("help", "max_length", "min_length", "pattern")

    def __init__(
        self,
        *,
        min_length: int = 0,
        max_length: int | None = None,
        pattern: str | None = None,
        help: str = "",  # what a pattern allows, in words
    ) -> None:
        self.min_length, self.max_length = min_length, max_length
        self.pattern = re.compile(pattern) if pattern else None
        self.help = help

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, str):
            return ctx.fail(loc, f"expected a string, got {brief(value)}")
        if len(value) < self.min_length:
            if self.min_length == 1:
                return ctx.fail(loc, "must not be empty")
            return ctx.fail(loc, f"too short: at least {self.min_length} characters")
        if self.max_length is not None and len(value) > self.max_length:
            return ctx.fail(loc, f"too long: at most {self.max_length} characters allowed")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            return ctx.fail(loc, f"expected {self.help}; got {brief(value)}")
        return value


class OneOf(Kind):
    """One of a few fixed strings."""

    __slots__ = ("allowed", "values")

    def __init__(self, *values: str) -> None:
        self.values = frozenset(values)
        shown = [repr(v) for v in values]
        self.allowed = ", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else shown[0]

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        if isinstance(value, str) and value in self.values:
            return value
        return ctx.fail(loc, f"allowed: {self.allowed}; got {brief(value)}")


class Opt(Kind):
    """None, or a value of ``inner``."""

    __slots__ = ("inner",)

    def __init__(self, inner: Kind) -> None:
        self.inner = inner

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        return None if value is None else self.inner.check(value, loc, ctx)


class NullIs(Kind):
    """YAML null (a section with every line commented out) means ``empty``, then ``inner``."""

    __slots__ = ("empty", "inner")

    def __init__(self, empty: Callable[[], object], inner: Kind) -> None:
        self.empty, self.inner = empty, inner

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        return self.inner.check(self.empty() if value is None else value, loc, ctx)


class Seq(Kind):
    """A list of ``item``; kept as a list, or a tuple with ``as_tuple``."""

    __slots__ = ("as_tuple", "item", "min_length")

    def __init__(self, item: Kind, *, min_length: int = 0, as_tuple: bool = False) -> None:
        self.item, self.min_length, self.as_tuple = item, min_length, as_tuple

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, list | tuple):
            return ctx.fail(loc, f"expected a list, got {brief(value)}")
        if len(value) < self.min_length:
            name = str(loc[-1]) if loc else ""
            return ctx.fail(loc, _AT_LEAST_ONE.get(name, f"needs at least {self.min_length} items"))
        before = len(ctx.problems)
        items = [self.item.check(v, (*loc, i), ctx) for i, v in enumerate(value)]
        if len(ctx.problems) > before:
            return BAD
        return tuple(items) if self.as_tuple else items


class MapOf(Kind):
    """A mapping of string keys to ``value`` items."""

    __slots__ = ("value",)

    def __init__(self, value: Kind) -> None:
        self.value = value

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        if not isinstance(value, Mapping):
            return ctx.fail(loc, f"expected a mapping (key: value), got {brief(value)}")
        before = len(ctx.problems)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                ctx.fail((*loc, brief(key)), f"a key must be a string, got {brief(key)}")
                continue
            out[key] = self.value.check(item, (*loc, key), ctx)
        return BAD if len(ctx.problems) > before else out


class Custom(Kind):
    """``parse(value, ctx)`` gives the value, or raises ValueError saying what is allowed.

    With ``inner``, the value is first checked by it and ``parse`` sees the result.
    """

    __slots__ = ("inner", "parse")

    def __init__(self, parse: Callable[[Any, Ctx], object], inner: Kind | None = None) -> None:
        self.parse, self.inner = parse, inner

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        if self.inner is not None:
            value = self.inner.check(value, loc, ctx)
            if value is BAD:
                return BAD
        try:
            return self.parse(value, ctx)
        except ValueError as exc:
            return ctx.fail(loc, str(exc))


class Nested(Kind):
    """A mapping validated by a model class."""

    __slots__ = ("cls",)

    def __init__(self, cls: type[Model]) -> None:
        self.cls = cls

    def check(self, value: object, loc: Loc, ctx: Ctx) -> Any:
        return _build(self.cls, value, loc, ctx)


# -- models ----------------------------------------------------------------------------------


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FieldSpec:
    """One field of a model: its attribute, its YAML key, its kind and its default
    (``default``, or ``factory()`` for a mutable one; both MISSING: required)."""

    __slots__ = ("default", "factory", "key", "kind", "name")

    def __init__(self, name: str, key: str, kind: Kind, default: Any, factory: Any) -> None:
        self.name, self.key, self.kind, self.default, self.factory = (
            name,
            key,
            kind,
            default,
            factory,
        )

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.factory is MISSING

    def __repr__(self) -> str:
        return f"FieldSpec({self.name!r}, key={self.key!r})"


class _Declared:
    """What :func:`spec` leaves in a class body, until :func:`model` reads it."""

    __slots__ = ("default", "factory", "key", "kind")

    def __init__(self, kind: Kind, default: Any, factory: Any, key: str | None) -> None:
        self.kind, self.default, self.factory, self.key = kind, default, factory, key


def spec(
    kind: Kind,
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    key: str | None = None,
) -> Any:
    """Declare a model field: its ``kind``, its default (or none: required), its YAML ``key``
    when that is not the attribute's name (``timeout`` for ``timeout_s``)."""
    return _Declared(kind, default, default_factory, key)


def _rebuild(cls: type[Model], values: dict[str, Any]) -> Model:
    return cls(**values)


class Model:
    """The base of every sync.yaml model (decorate subclasses with :func:`model`).

    Instances are frozen and slotted, compare and hash by their field values,
    copy and pickle (without going through ``__setattr__``).
    """

    __slots__ = ()
    __schema__: ClassVar[tuple[FieldSpec, ...]] = ()

    def __init__(self, **values: Any) -> None:
        for f in self.__schema__:
            if f.name in values:
                value = values.pop(f.name)
            elif f.default is not MISSING:
                value = f.default
            elif f.factory is not MISSING:
                value = f.factory()
            else:
                raise TypeError(f"{type(self).__name__}: missing field {f.name!r}")
            object.__setattr__(self, f.name, value)
        if values:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(values)}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in self.__schema__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Model)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__schema__)
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), {f.name: getattr(self, f.name) for f in self.__schema__}))

    def _check(self) -> None:
        """The model's cross-field check: raise ValueError naming what is wrong."""

    @classmethod
    def model_validate(cls: type[T], data: object, *, base_dir: object = None) -> T:
        """Validate ``data`` (parsed YAML) into this model. Raises :class:`Invalid`.

        ``base_dir`` is what relative paths resolve against (None: they are an error).
        """
        ctx = Ctx(base_dir)
        result = _build(cls, data, (), ctx)  # type: ignore[arg-type]
        if ctx.problems:
            raise Invalid(ctx.problems)
        return result  # type: ignore[no-any-return]

    @classmethod
    def yaml_keys(cls) -> list[str]:
        """The YAML keys this model accepts, in declaration order."""
        return [f.key for f in cls.__schema__]


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(spec,))
def model(cls: type[T]) -> type[T]:
    """Make ``cls`` (a :class:`Model` subclass) a frozen, slotted model: each annotated
    field (declared with :func:`spec`) becomes a slot, and the schema lists them, the
    fields of a model it extends first. No code is generated (cheap at import)."""
    inherited: list[FieldSpec] = list(getattr(cls, "__schema__", ()))
    own: list[FieldSpec] = []
    # the class's own annotations (strings, under `from __future__ import annotations`);
    # inspect.get_annotations would import inspect, the start-up cost this module avoids
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        declared = cls.__dict__.get(name)
        if not isinstance(declared, _Declared):
            raise TypeError(f"{cls.__name__}.{name}: declare the field with spec()")
        own.append(
            FieldSpec(name, declared.key or name, declared.kind, declared.default, declared.factory)
        )
    names = {f.name for f in own}
    namespace = {
        k: v
        for k, v in cls.__dict__.items()
        if k not in names and k not in ("__dict__", "__weakref__")
    }
    namespace["__slots__"] = tuple(f.name for f in own)
    namespace["__schema__"] = tuple([f for f in inherited if f.name not in names] + own)
    made: Any = type(cls)(cls.__name__, cls.__bases__, namespace)  # type: ignore[misc]
    made.__qualname__ = cls.__qualname__
    return made  # type: ignore[no-any-return]


def _build(cls: type[Model], data: object, loc: Loc, ctx: Ctx) -> Any:
    if not isinstance(data, Mapping):
        return ctx.fail(
            loc,
            f"expected a mapping with keys from: {', '.join(cls.yaml_keys())}; got {brief(data)}",
        )
    schema = cls.__schema__
    before = len(ctx.problems)
    values: dict[str, object] = {}
    known = set()
    for f in schema:
        known.add(f.key)
        if f.key in data:
            values[f.name] = f.kind.check(data[f.key], (*loc, f.key), ctx)
        elif f.required:
            ctx.fail((*loc, f.key), "required field is missing")
    unknown = [key for key in data if key not in known]
    for key in unknown:
        where = (*loc, key if isinstance(key, str) else brief(key))
        ctx.fail(where, f"unknown field; allowed: {', '.join(cls.yaml_keys())}")
    if len(ctx.problems) > before:
        return BAD
    instance = cls(**values)
    try:
        instance._check()
    except ValueError as exc:
        return ctx.fail(loc, str(exc))
    return instance


def kinds_of(cls: type[Model]) -> Sequence[FieldSpec]:
    """The schema of a model class (for documentation and tests)."""
    return cls.__schema__
