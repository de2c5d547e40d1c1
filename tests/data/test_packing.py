"""Packing keeps samples apart: per-sample losses of a packed batch equal those of each sample alone.

The packed batches come from the dataloader of an SFTTrainer built with
`packing_sft_config_kwargs` (TRL's bfd packing and padding-free collator); the forward is the
one `SFTTrainer.compute_loss` runs (`use_cache=False`, `fused_lm_head=True`, per-token log-probs).
The reference runs each sample alone through the collator TRL uses without packing.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tune.data.chat_masks import IGNORE_INDEX, label_conversation
from tune.data.packing import (
    BOUNDARY_SAFE_ATTENTION,
    check_packable,
    pack_bins,
    packing_sft_config_kwargs,
    packing_summary,
    padding_fraction,
)
from tune.errors import UserError

PINNED = {"conversation_start_date": "2026-04-01", "reasoning_effort": "medium"}
TWINS = ["tiny-llm-jp-4-8b", "tiny-llm-jp-4-32b-a3b"]
# Every implementation packing accepts that runs on CPU. flex_attention is correct on CPU too, but
# compiling its kernels and block masks with Inductor takes ~30 s per twin on 2 cores: slow-marked.
CPU_ATTENTION = ["sdpa", "eager", pytest.param("flex_attention", marks=pytest.mark.slow)]
MAX_LEN = 320  # two samples of these conversations fit in one row, three do not
BATCH = 2  # packed rows per batch: the collator flattens them into one row
TOL = 1e-5

CONVERSATIONS = [
    [
        {"role": "user", "content": "富士山の高さは？"},
        {"role": "assistant", "content": "3,776メートルです。"},
    ],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"},
    ],
    [
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "content": "No: 91 = 7 x 13.", "thinking": "Try 7: 7*13 = 91."},
    ],
    [
        {"role": "user", "content": "Name three colours, please."},
        {"role": "assistant", "content": "Red, green and blue."},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help you today? I can answer many questions."},
        {"role": "user", "content": "日本の首都は？"},
        {"role": "assistant", "content": "東京です。"},
        {"role": "user", "content": "Thanks, and the population?"},
        {"role": "assistant", "content": "About fourteen million people live in Tokyo proper."},
    ],
    [
        {"role": "user", "content": "Please reply with one word: ok. Nothing else."},
        {"role": "assistant", "content": "ok"},
    ],
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny forwards gain nothing from threads, and on a busy 2-core machine oversubscribed OpenMP
    threads make this module several times slower; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def samples(tiny_tokenizer):
    return [label_conversation(tiny_tokenizer, messages, PINNED) for messages in CONVERSATIONS]


def _dataset(samples):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [s.input_ids for s in samples], "labels": [s.labels for s in samples]})


def _packed_trainer(twin: str, attn: str, dataset, tokenizer, out_dir):
    """The SFTTrainer training would build with `data.packing: true` (fp32, CPU)."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin

    folder = ensure_twin(get_preset(twin))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=attn)
    args = SFTConfig(
        output_dir=str(out_dir),
        max_length=MAX_LEN,
        per_device_train_batch_size=BATCH,
        bf16=False,
        use_cpu=True,
        report_to="none",
        activation_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        **packing_sft_config_kwargs(attn),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    model.eval()  # no dropout: compare numbers, not draws
    return trainer


def _token_nll(model, batch):
    """Per-token negative log-likelihood and label mask, through the forward SFTTrainer.compute_loss runs."""
    import torch

    inputs = {**batch, "use_cache": False}
    with torch.no_grad():
        out = model(**inputs, fused_lm_head=True)
    return -out.log_probs.double(), out.label_mask, out


def _segments(batch):
    """(start, end) of each packed sample in the single flattened row of a padding-free batch."""
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    return list(zip(starts, starts[1:] + [batch["position_ids"].shape[1]]))


def _per_sample_packed(model, batch):
    """{sample token ids: (per-token nll, supervised count)} for every sample of a packed batch."""
    nll, mask, _ = _token_nll(model, batch)
    found = {}
    for start, end in _segments(batch):
        ids = tuple(batch["input_ids"][0, start:end].tolist())
        # nll[i] scores the label at i + 1, so the sample's own labels are nll[start : end - 1]
        found[ids] = (nll[0, start : end - 1], int(mask[0, start : end - 1].sum()))
    return found


def _per_sample_alone(model, samples, tokenizer):
    """{sample token ids: (per-token nll, supervised count)} with each sample alone, unpacked."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)  # SFTTrainer's, packing off
    alone = {}
    for s in samples:
        nll, mask, _ = _token_nll(model, collator([{"input_ids": s.input_ids, "labels": s.labels}]))
        alone[tuple(s.input_ids)] = (nll[0], int(mask.sum()))
    return alone


def _per_sample_packed_with(model, altered, original):
    """Per-sample nll of ``altered`` (a modified packed batch), split at the boundaries of ``original``."""
    nll, mask, _ = _token_nll(model, altered)
    return {
        tuple(original["input_ids"][0, a:b].tolist()): (nll[0, a : b - 1], int(mask[0, a : b - 1].sum()))
        for a, b in _segments(original)
    }


@pytest.fixture(scope="module")
def packed_run(samples, tiny_tokenizer, tmp_path_factory):
    """run(twin, attn) -> (trainer, packed batches, per-sample packed nll, per-sample alone nll), cached."""
    runs = {}

    def run(twin: str, attn: str):
        key = (twin, attn)
        if key not in runs:
            out = tmp_path_factory.mktemp(f"{twin}-{attn}")
            trainer = _packed_trainer(twin, attn, _dataset(samples), tiny_tokenizer, out)
            batches = list(trainer.get_train_dataloader())
            packed = {}
            for batch in batches:
                packed.update(_per_sample_packed(trainer.model, batch))
            alone = _per_sample_alone(trainer.model, samples, tiny_tokenizer)
            runs[key] = (trainer, batches, packed, alone)
        return runs[key]

    return run


@pytest.mark.parametrize("attn", CPU_ATTENTION)
@pytest.mark.parametrize("twin", TWINS)
def test_packed_per_sample_loss_equals_each_sample_alone(packed_run, samples, twin, attn):
    trainer, batches, packed, alone = packed_run(twin, attn)
    assert all("attention_mask" not in b and b["input_ids"].shape[0] == 1 for b in batches)  # padding-free rows
    assert any(len(_segments(b)) > 1 for b in batches)  # samples really share rows
    assert set(packed) == set(alone) and len(packed) == len(samples)
    for ids, (nll, count) in packed.items():
        ref, ref_count = alone[ids]
        assert count == ref_count > 0
        token_diff = (nll - ref).abs().max().item()
        total, ref_total = nll.sum().item(), ref.sum().item()
        assert token_diff <= TOL, (len(ids), token_diff)
        assert abs(total / count - ref_total / ref_count) <= TOL  # per-sample mean loss
        # Summed over ~40 tokens of ~8 nats, fp32 noise of 1e-6 per token can add up past 1e-5
        # absolute; relative to the sum it stays far below.
        assert abs(total - ref_total) <= TOL * max(1.0, abs(ref_total)), (total, ref_total)


@pytest.mark.parametrize("twin", TWINS)
def test_trainer_loss_of_a_packed_batch_is_the_unpacked_token_mean(packed_run, twin):
    """`SFTTrainer.compute_loss` itself: its LM loss over a packed batch is the token mean of its samples
    alone (plus, for the MoE twin, the router aux loss, a statistic of the whole batch)."""
    import torch

    trainer, batches, _, alone = packed_run(twin, "sdpa")
    for batch in batches:
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, dict(batch)).item()
        ids = [tuple(batch["input_ids"][0, a:b].tolist()) for a, b in _segments(batch)]
        expected = sum(alone[i][0].sum().item() for i in ids) / sum(alone[i][1] for i in ids)
        if trainer.aux_loss_enabled:
            expected += trainer.router_aux_loss_coef * _token_nll(trainer.model, batch)[2].aux_loss.item()
        assert loss == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("twin", TWINS)
def test_contamination_would_be_caught(packed_run, twin):
    """The same packed batch, with its boundaries lost in three ways, gives other losses: the check can fail."""
    import torch

    trainer, batches, packed, _ = packed_run(twin, "sdpa")
    model = trainer.model
    batch = next(b for b in batches if len(_segments(b)) > 1)

    def worst_change(found):
        return max((found[ids][0] - packed[ids][0]).abs().max().item() for ids in found)

    not_reset = {**batch, "position_ids": torch.arange(batch["input_ids"].shape[1])[None]}
    assert worst_change(_per_sample_packed_with(model, not_reset, batch)) > 1e-2
    # An all-ones attention_mask (what a collator without padding-free returns) makes transformers skip
    # packed-sequence detection: plain causal attention across samples, positions still reset.
    with_mask = {**batch, "attention_mask": torch.ones_like(batch["input_ids"])}
    assert worst_change(_per_sample_packed_with(model, with_mask, batch)) > 1e-2
    # A forward with a cache (use_cache=True is the config default) also skips the detection; the
    # trainer's forward passes use_cache=False. Pinned so we learn if transformers changes it.
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        cached = model.model(**inputs, use_cache=True).last_hidden_state
        uncached = model.model(**inputs, use_cache=False).last_hidden_state
    assert (cached - uncached).abs().max().item() > 1e-2


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_mask_built_from_packed_position_ids_is_block_diagonal(attn):
    import torch
    from transformers import LlamaConfig
    from transformers.masking_utils import create_causal_mask

    config = LlamaConfig(hidden_size=32, num_attention_heads=2, num_key_value_heads=2, num_hidden_layers=1)
    config._attn_implementation = attn
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    embeds = torch.zeros(1, 9, 32)
    mask = create_causal_mask(config, embeds, attention_mask=None, cache=None, position_ids=position_ids)
    allowed = mask[0, 0] if mask.dtype == torch.bool else mask[0, 0] == 0
    doc = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    expected = (doc[:, None] == doc[None, :]) & torch.ones(9, 9, dtype=torch.bool).tril()
    assert torch.equal(allowed, expected)


def test_packing_keeps_every_token_of_every_sample(packed_run, samples):
    trainer, batches, _, _ = packed_run("tiny-llm-jp-4-8b", "sdpa")
    rows = trainer.train_dataset
    # The packed dataset: every sample whole, contiguous, with its own labels, exactly once.
    segments = []
    for row in rows:
        start = 0
        for n in row["seq_lengths"]:
            segments.append((tuple(row["input_ids"][start : start + n]), tuple(row["labels"][start : start + n])))
            start += n
        assert start == len(row["input_ids"]) <= MAX_LEN
    assert Counter(segments) == Counter((tuple(s.input_ids), tuple(s.labels)) for s in samples)
    # The batches the trainer draws: the multiset of (input_id, label) tokens is preserved; the only
    # label the collator changes is the one at each sample start, which is -100 in our data already.
    seen = Counter()
    for batch in batches:
        seen.update(zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist()))
    assert seen == Counter(pair for s in samples for pair in zip(s.input_ids, s.labels))


def test_first_token_of_a_packed_sample_is_never_a_target(tiny_tokenizer):
    """Even with labels on every token, the collator masks each sample's first label, so the previous
    sample's last token is never trained to predict it."""
    from datasets import Dataset
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    ids = [[11, 12, 13, 14, 15], [21, 22, 23], [31, 32, 33, 34], [41, 42], [51, 52, 53, 54, 55, 56]]
    rows = pack_dataset(Dataset.from_dict({"input_ids": ids, "labels": ids}), 8, "bfd")
    collator = DataCollatorForLanguageModeling(pad_token_id=tiny_tokenizer.pad_token_id, padding_free=True)
    batch = collator([rows[i] for i in range(len(rows))])
    starts = batch["position_ids"][0] == 0
    assert int(starts.sum()) == len(ids)
    assert (batch["labels"][0][starts] == IGNORE_INDEX).all()
    assert (batch["labels"][0][~starts] == batch["input_ids"][0][~starts]).all()
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3]


def test_padding_fraction_and_bins_on_a_small_known_case():
    lengths, max_len = [5, 3, 4, 2, 6], 8
    # Unpacked, in order, 2 per batch: [5,3] -> 10 slots, [4,2] -> 8, [6] -> 6; 4 of 24 slots are padding.
    assert padding_fraction(lengths, max_len, batch_size=2, packed=False) == pytest.approx(4 / 24)
    assert padding_fraction(lengths, max_len, batch_size=1, packed=False) == 0.0
    assert padding_fraction(lengths, max_len, batch_size=5, packed=False) == pytest.approx(10 / 30)
    # Packed (best-fit decreasing): [6,2] [5,3] [4]; the padding-free collator pads nothing.
    assert pack_bins(lengths, max_len) == [[6, 2], [5, 3], [4]]
    assert padding_fraction(lengths, max_len, batch_size=2, packed=True) == 0.0
    summary = packing_summary(lengths, max_len)
    assert (summary.rows, summary.tokens) == (3, 20)
    assert summary.unused_tail_fraction == pytest.approx(4 / 24)


def test_pack_bins_are_the_bins_trl_builds_for_the_trainer(packed_run, samples):
    trainer, _, _, _ = packed_run("tiny-llm-jp-4-8b", "sdpa")
    built = sorted(tuple(row["seq_lengths"]) for row in trainer.train_dataset)
    assert sorted(map(tuple, pack_bins([len(s.input_ids) for s in samples], MAX_LEN))) == built


def test_an_attention_implementation_that_cannot_keep_samples_apart_is_refused():
    with pytest.raises(UserError) as info:
        packing_sft_config_kwargs("paged|eager")
    message = str(info.value)
    assert "model.attn_implementation" in message and "'paged|eager'" in message
    assert "sdpa" in message and "data.packing: false" in message
    for attn in BOUNDARY_SAFE_ATTENTION:
        assert packing_sft_config_kwargs(attn)["packing_strategy"] == "bfd"


def test_samples_packing_would_cut_or_drop_are_refused():
    from datasets import Dataset
    from trl import pack_dataset

    # The trap: TRL's bfd cuts an overlong sample to max_length without a word.
    packed = pack_dataset(Dataset.from_dict({"input_ids": [list(range(10)), [7, 7, 7]]}), 8, "bfd")
    assert sum(len(row) for row in packed["input_ids"]) == 11  # 13 tokens in, 2 lost
    with pytest.raises(UserError, match="data.max_seq_len.*data.overlong"):
        check_packable([10, 3], 8)
    with pytest.raises(UserError, match="no token"):
        check_packable([0, 3], 8)
    with pytest.raises(UserError):
        padding_fraction([10, 3], 8, batch_size=2, packed=True)
    check_packable([8, 3], 8)
