"""A cpt recipe's corpus prefixes resolve where the user wrote them; `tune validate` reads the corpora that are
here (sizes, shares, steps), defers the ones that are not, and refuses broken ones at their key."""

from __future__ import annotations

from tests.data.corpus_helpers import cpt_recipe, load, write_corpus
from tune.plan import plan_lines


def test_prefixes_resolve_against_corpus_root_or_the_recipe_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    path = cpt_recipe(tmp_path / "recipes", "[{prefix: ja/cc}, {prefix: /abs/en}]", eval_corpora="[{prefix: ev}]")
    plain = load(path).data
    assert [c.prefix for c in plain.corpora] == [str(tmp_path / "recipes/ja/cc"), "/abs/en"]
    assert plain.eval_corpora[0].prefix == str(tmp_path / "recipes/ev")
    rooted = load(path, ["data.corpus_root=corpora/v4"]).data  # an override: relative to the current folder
    assert rooted.corpus_root == str(tmp_path / "corpora/v4")
    assert [c.prefix for c in rooted.corpora] == [str(tmp_path / "corpora/v4/ja/cc"), "/abs/en"]
    assert rooted.eval_corpora[0].prefix == str(tmp_path / "corpora/v4/ev")


def test_a_tune_prefix_must_name_a_shipped_pair(tmp_path, recipe_error):
    path = cpt_recipe(tmp_path, "[{prefix: 'tune:samples/corpora/no-such-corpus'}]")
    text = recipe_error(path)
    assert "recipe.yaml:4:" in text and "data.corpora.0.prefix: no such corpus shipped with tune" in text
    assert "no-such-corpus.bin" in text


def test_validate_reads_corpora_that_are_here_and_defers_the_others(tmp_path):
    write_corpus(tmp_path / "law", 30, seed=1)
    write_corpus(tmp_path / "general", 90, seed=2)
    here = load(cpt_recipe(tmp_path, "[{prefix: law, repeat: 4}, {prefix: general}]", max_steps=None, seq_len=32))
    lines = [line for line in plan_lines(here) if "corp" in line]
    assert lines[0].startswith("corpus law: 30 documents, ") and "(int32), repeat 4, target share" in lines[0]
    assert lines[1].startswith("corpus general: 90 documents, ")
    assert "x global batch 4 x 32 tokens" in lines[2] and "2 epoch(s) of tokens x repeat" in lines[2]
    away = load(cpt_recipe(tmp_path, "[{prefix: law}, {prefix: /cluster/corpus/ja}]", name="away.yaml"))
    deferred = [line for line in plan_lines(away) if "corp" in line]
    assert deferred == ["corpora deferred to `tune run` (not on this machine, so sizes and shares are not known "
                        "here): data.corpora.1.prefix /cluster/corpus/ja"]


def test_broken_or_ambiguous_corpora_are_refused_at_their_key(tmp_path, recipe_error):
    (tmp_path / "foreign.idx").write_bytes(b"not an index at all, just text" * 4)
    (tmp_path / "foreign.bin").write_bytes(b"")
    write_corpus(tmp_path / "a", 5, seed=3)
    text = recipe_error(cpt_recipe(tmp_path, "[{prefix: foreign}]"))
    assert "data.corpora.0.prefix: " in text and "foreign.idx is not a Megatron index" in text
    text = recipe_error(cpt_recipe(tmp_path, "[{prefix: a, name: law}, {prefix: /x/b, name: law}]", name="n.yaml"))
    assert "data.corpora.1.name: corpus name 'law' is taken by data.corpora.0" in text
    text = recipe_error(cpt_recipe(tmp_path, "[{prefix: a}]", eval_corpora="[{prefix: a, name: again}]", name="e.yaml"))
    assert "data.eval_corpora.0.prefix: " in text and "is also a training corpus" in text
