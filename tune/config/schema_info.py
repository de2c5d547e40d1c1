"""What the schema expects at a key path, in words a person reads.

``locate`` turns a pydantic error ``loc`` (``('data', 'datasets', 0, 'path')``, possibly with
union-branch tags such as ``"list[str]"``) into a dotted key path, the type annotation expected
there and the section model that holds the key. ``describe`` says a type in words ("a number",
"one of: cosine, linear, constant", "a list of strings").
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag

from tune.config.schema import Recipe

_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", type(None): "null"}


@dataclass(frozen=True)
class Located:
    """A pydantic ``loc`` read against the schema.

    ``path``: dotted key path; ``annotation``: the type expected there (None when the key is not
    in the schema); ``section``: the model holding the last key; ``union_path``: the dotted path
    of the union field the error came from, when pydantic reported one union branch.
    """

    path: str
    annotation: Any
    section: type[BaseModel] | None
    union_path: str | None = None
    union_annotation: Any = None


def locate(loc: tuple[str | int, ...], root: type[BaseModel] = Recipe) -> Located:
    """Read ``loc`` from the top of ``root`` (see ``Located``)."""
    parts: list[str] = []
    annotation: Any = root
    section: type[BaseModel] | None = root if not loc else None
    union_path = union_annotation = None
    for item in loc:
        model = as_model(annotation)
        tagged = tagged_arm(annotation, item)
        if tagged is not None:  # a discriminated union names the arm it validated against: not a key
            annotation = tagged
        elif isinstance(item, int):
            parts.append(str(item))
            annotation = list_item(annotation)
        elif model is not None:
            section = model
            parts.append(item)
            field = model.model_fields.get(item)
            annotation = field.annotation if field is not None else None
        elif is_union(annotation):
            if union_path is None:
                union_path, union_annotation = ".".join(parts), annotation
        else:
            parts.append(item)
            annotation = None
    return Located(".".join(parts), annotation, section, union_path, union_annotation)


def arms(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a union (``X | Y``, ``Optional[X]``, a tagged union's classes), or the annotation alone."""
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(_untagged(arm) for arm in get_args(annotation))
    return (_untagged(annotation),)


def _untagged(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def tagged_arm(annotation: Any, item: Any) -> Any:
    """The class of the discriminated-union arm tagged ``item`` (``method`` -> ``dpo`` -> DpoMethod), else None."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return None
    for arm in get_args(annotation):
        if get_origin(arm) is Annotated:
            cls, *metadata = get_args(arm)
            if any(isinstance(m, Tag) and m.tag == item for m in metadata):
                return cls
    return None


def is_union(annotation: Any) -> bool:
    return len(arms(annotation)) > 1


def as_model(annotation: Any) -> type[BaseModel] | None:
    """The section model ``annotation`` stands for (``X | None`` included), else None."""
    for arm in arms(annotation):
        if isinstance(arm, type) and issubclass(arm, BaseModel):
            return arm
    return None


def list_item(annotation: Any) -> Any:
    """The item type of the list among ``annotation``'s arms (None when there is no list)."""
    for arm in arms(annotation):
        if get_origin(arm) is list:
            return get_args(arm)[0]
    return None


def literal_choices(annotation: Any) -> list[Any]:
    """Every literal value allowed by ``annotation`` (its union arms included)."""
    return [value for arm in arms(annotation) if get_origin(arm) is Literal for value in get_args(arm)]


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys a section accepts, in schema order."""
    return list(model.model_fields)


def describe(annotation: Any, path: str = "") -> str:
    """``annotation`` in words; ``path`` names a section (``a mapping (the `train` section)``)."""
    words = []
    for arm in arms(annotation):
        if get_origin(arm) is Literal:
            choices = get_args(arm)
            words.append(f"'{choices[0]}'" if len(choices) == 1 else "one of: " + ", ".join(map(str, choices)))
        elif get_origin(arm) is list:
            words.append(_describe_list(get_args(arm)[0]))
        elif isinstance(arm, type) and issubclass(arm, BaseModel):
            words.append(f"a mapping (the `{path}` section)" if path else "a mapping of keys")
        else:
            words.append(_WORDS.get(arm, "a value"))
    return " or ".join(dict.fromkeys(words))


def _describe_list(item: Any) -> str:
    if get_origin(item) is Literal:
        return "a list of values from: " + ", ".join(map(str, get_args(item)))
    if isinstance(item, type) and issubclass(item, BaseModel):
        return "a list of mappings"
    if item is str:
        return "a list of strings"
    return f"a list of {describe(item)} values"


def number_word(annotation: Any) -> str:
    """``a whole number`` for an int field, else ``a number`` (for bounds)."""
    return "a whole number" if int in arms(annotation) else "a number"
