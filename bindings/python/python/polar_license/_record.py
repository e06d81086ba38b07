"""``record``: the report classes' immutable records, without ``dataclasses`` at run time.

Importing ``dataclasses`` (it imports ``inspect``, ``ast``, ``dis``, ``re``…) and generating
each class's methods with ``exec`` was most of ``import polar_license``'s time, and the
package promises an import and a first cached check in a few milliseconds (docs/performance.md).
A record here is what a frozen dataclass is to its user: keyword or positional construction in
the annotations' order, defaults, a dataclass-style ``repr``, ``==`` and ``hash`` over its
fields, and no assignment after construction. Type checkers see the decorator through
``dataclass_transform`` (PEP 681), so they check constructors and refuse assignment as they do
for a frozen dataclass. It is not a dataclass: ``dataclasses.fields`` and ``asdict`` do not
apply.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    _T = TypeVar("_T")


class _Field:
    """A field's options (only what the package uses): its default, shown in ``repr``,
    compared by ``==``."""

    __slots__ = ("default", "repr", "compare")

    def __init__(self, default: object, repr: bool, compare: bool) -> None:
        self.default = default
        self.repr = repr
        self.compare = compare


_MISSING = _Field(None, True, True)


def field(*, default: Any = None, repr: bool = True, compare: bool = True) -> Any:
    """A field with a default that ``repr`` may hide and ``==`` may ignore."""
    return _Field(default, repr, compare)


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")


def _frozen_delattr(self: object, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")


def _make(cls: type[_T]) -> type[_T]:
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults: dict[str, object] = {}
    shown: list[str] = []
    compared: list[str] = []
    for name in names:
        spec = cls.__dict__.get(name, _MISSING)
        if spec is _MISSING:
            if defaults:
                raise TypeError(f"{cls.__name__}.{name}: a field with no default after one with")
            spec = _MISSING
        elif isinstance(spec, _Field):
            defaults[name] = spec.default
        else:
            defaults[name] = spec
            spec = _MISSING
        if spec.repr:
            shown.append(name)
        if spec.compare:
            compared.append(name)
        if name in cls.__dict__:
            delattr(cls, name)  # the instance holds the value; no class attribute shadows it
    required = len(names) - len(defaults)
    shown_t, compared_t = tuple(shown), tuple(compared)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments but "
                            f"{len(args)} were given")
        values = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
            values[name] = value
        missing = [n for n in names[:required] if n not in values]
        if missing:
            raise TypeError(f"{cls.__name__}() missing required arguments: {', '.join(missing)}")
        put = object.__setattr__
        for name in names:
            put(self, name, values[name] if name in values else defaults[name])

    def __repr__(self: object) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown_t)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in compared_t)

    def __hash__(self: object) -> int:
        return hash(tuple(getattr(self, n) for n in compared_t))

    for method in (__init__, __repr__, __eq__, __hash__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
    setattr(cls, "__setattr__", _frozen_setattr)
    setattr(cls, "__delattr__", _frozen_delattr)
    setattr(cls, "__match_args__", names)
    return cls


if TYPE_CHECKING:

    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def record(cls: type[_T]) -> type[_T]: ...

else:

    def record(cls):
        """Makes ``cls`` an immutable record of its annotated fields (see the module)."""
        return _make(cls)
