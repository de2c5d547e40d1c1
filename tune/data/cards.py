"""Dataset cards: one YAML file per dataset in ``datasets_cards/``, validated by ``Card``.

A card says where a dataset lives (Hugging Face id, config, revision, split), under which terms,
what it is (kind, languages, approximate size, how it relates to LLM-jp's own training data and
how sure we are), how to read it (a converter and its field mapping), which shapes of row its data
has been seen in (each a shape its converter reads, with how sure that is and on what source) and
how much to weight it by default. Unknown facts are written as ``null`` (or ``unknown`` for the
licence) with a note, never guessed. Next to each card lies ``<name>.samples.jsonl``: rows we wrote ourselves in the
source's own schema, which tests and the offline demo convert; they hold rows in every shape the
card lists, and in no other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tune.config.problems import close_matches
from tune.data.converters import CONVERTERS, get_converter
from tune.errors import UserError
from tune.resources import shipped_cards_dir

NAME_PATTERN = r"^[a-z0-9]+([.-][a-z0-9]+)*$"


class CardError(UserError, ValueError):
    """A card that does not exist or does not validate."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConverterSpec(Strict):
    """How a card's rows are read: the `source:` section of a card."""

    converter: str = Field(description="Name of the converter that reads the rows (tune.data.converters).")
    fields: dict[str, str] = Field(default_factory=dict, description="Logical field -> source column, over the converter's defaults.")


class Provenance(Strict):
    relation: Literal["llmjp4_sft_subset", "llmjp3_set", "llmjp_release", "other"] = Field(
        description="A published subset of LLM-jp-4's SFT set, a set LLM-jp-3 was tuned on, another LLM-jp release, or other.")
    confidence: Literal["confirmed", "likely", "unknown"]
    source: str = Field(min_length=1, description="Where the relation is stated (file, page).")


class ShapeSeen(Strict):
    """One shape of row a card's data has been seen in: the `shapes:` items of a card."""

    name: str = Field(description="A shape the card's converter reads (its `shapes`, tune.data.converters).")
    confidence: Literal["confirmed", "likely", "unknown"] = Field(
        description="confirmed: the dataset's files or page, or its publisher's own code reading it, show it; likely: "
                    "third-party code or summaries of this dataset show it; unknown: assumed (from a sibling set, from "
                    "related code), not seen.")
    source: str = Field(min_length=1, description="Where the shape is seen or why it is assumed (file, page, code).")


class Card(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Lowercase, digits, hyphens (dots inside version numbers); the file stem.")
    hf_id: str | None = Field(description="Hugging Face dataset id; null when the data is not on the Hub.")
    config: str | None = Field(description="HF config (subset) name, or null for the default.")
    data_dir: str | None = Field(default=None, description="Folder of the HF repo to load (`load_dataset(data_dir=...)`) when the set is a folder, not a config.")
    revision: str | None = Field(description="Pinned commit, or null when unknown.")
    split: str | None = Field(description="Split to read.")
    license: str = Field(min_length=1, description="Licence identifier, `other`, or `unknown`.")
    terms: str | None = Field(description="Terms of use beyond the licence, in our words.")
    redistribution_allowed: bool | None = Field(description="May the rows be redistributed? null when unknown.")
    languages: list[str] = Field(min_length=1)
    kind: Literal["sft", "preference", "text"]
    source: ConverterSpec
    shapes: list[ShapeSeen] = Field(min_length=1, description="The shapes of row the data has been seen in, "
                                    "with how sure that is; the samples hold rows in each of them.")
    default_weight: float = Field(gt=0, description="Upsampling factor (1 = each row once).")
    approx_rows: int | None = Field(ge=0, description="Approximate number of rows in the split, or null when unknown.")
    provenance: Provenance
    citation: str | None
    notes: str | None = None
    samples: str | None = Field(default=None, description="File of hand-written sample rows next to the card; default <name>.samples.jsonl.")

    @field_validator("samples")
    @classmethod
    def _plain_file_name(cls, value: str | None) -> str | None:
        if value is not None and (Path(value).name != value or not value.endswith(".jsonl")):
            raise ValueError("must be a .jsonl file name next to the card, without folders")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Card:
        converter = get_converter(self.source.converter)
        converter.resolve_fields(self.source.fields)
        if converter.kind != self.kind:
            raise ValueError(f"kind is {self.kind!r} but converter `{converter.name}` makes {converter.kind!r} records")
        names = [shape.name for shape in self.shapes]
        for name in names:
            if name not in converter.shapes:
                raise ValueError(f"shapes: converter `{converter.name}` reads no shape {name!r}; "
                                 f"its shapes are {', '.join(converter.shapes)}")
        if len(set(names)) != len(names):
            raise ValueError(f"shapes: a shape is listed twice ({', '.join(names)})")
        if self.samples is None:
            self.samples = f"{self.name}.samples.jsonl"
        return self


def cards_dir() -> Path:
    """The folder of the cards: the repository's ``datasets_cards/``, or the copy shipped in the wheel."""
    return shipped_cards_dir()


def card_names() -> list[str]:
    """Names of every card, sorted."""
    root = cards_dir()
    return sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []


def load_card(name: str) -> Card:
    """The validated card called ``name``.

    Refuses (CardError, a ValueError) an unknown name (listing the closest and all names), a file
    that is not YAML, a card that does not validate, and a card whose ``name`` is not its file stem.
    """
    names = card_names()
    if name not in names:
        close = close_matches(name, names, n=3)
        hint = f" (did you mean {', '.join(f'`{c}`' for c in close)}?)" if close else ""
        raise CardError(f"no dataset card `{name}`{hint}; known cards: {', '.join(names)}")
    path = cards_dir() / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise CardError(f"{path}: not valid YAML ({err})") from None
    try:
        card = Card.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(card)'}: {e['msg']}" for e in err.errors())
        raise CardError(f"{path}: {problems}") from None
    if card.name != name:
        raise CardError(f"{path}: name is `{card.name}` but the file is `{name}.yaml`; they must match")
    return card


def card_samples_path(card: Card) -> Path:
    """The sample-rows file of ``card`` (it may not exist; tests check that it does)."""
    return cards_dir() / (card.samples or f"{card.name}.samples.jsonl")


__all__ = ["Card", "CardError", "ShapeSeen", "card_names", "card_samples_path", "cards_dir", "load_card"]
