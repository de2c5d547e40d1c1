"""METHODS: every training method tune knows, as one table of plain data (no torch, no imports of the code).

A row says what defines a method beyond its recipe keys:

    name       the `method.name` that selects it
    section    its schema class (tune.config.schema): the keys its `method:` section accepts, their
               defaults with sources, and its default learning rates
    data_kind  the kind of data it trains on: `sft` (conversations) or `preference` (chosen/rejected
               pairs), as dataset cards and converters name their kind; tune.data picks the sample
               builder by it, tune.recipe refuses datasets of another kind at load time; `corpus`
               (pre-tokenized Megatron corpora, `data.corpora`) goes through tune.data.corpus_pipeline
    trains_on  the same in words, for messages
    train      the function that trains it, as "module:function"; tune.methods.run imports it only
               when the method runs, so this table stays importable by `tune validate`

Adding a method is one schema class (and its entry in ``METHOD_SECTIONS``), one row here and one
module in tune/methods; tests/config/test_methods.py checks the three agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from tune.config.schema import CptMethod, DpoMethod, MethodSection, SftMethod

@dataclass(frozen=True)
class MethodRow:
    """One training method (see the module docstring)."""

    name: str
    section: type[MethodSection]
    data_kind: str
    trains_on: str
    train: str

METHODS: dict[str, MethodRow] = {
    row.name: row
    for row in (
        MethodRow("sft", SftMethod, "sft",
                  "conversations (sft cards, or messages / llmjp4_sft / sharegpt / alpaca files)",
                  "tune.methods.sft:train_sft"),
        MethodRow("dpo", DpoMethod, "preference",
                  "preference pairs (preference cards, or `format: preference` files)",
                  "tune.methods.dpo:train_dpo"),
        MethodRow("cpt", CptMethod, "corpus",
                  "pre-tokenized corpora (`data.corpora`: Megatron .bin/.idx prefixes, see `tune data tokenize`)",
                  "tune.methods.cpt:train_cpt"),
    )
}
