"""The recipe schema: every key a recipe may hold, its type, default and meaning.

Every model forbids unknown keys (``extra="forbid"``), so a typo is an error, never a silently
ignored setting. Each field's description states its default and, where the default copies a
value LLM-jp published for LLM-jp-4, where that value comes from (``shared/docs/llmjp4.md``
summarises the sources: the LLM-jp-4 8B NeMo tuning recipe, the model cards).

This module imports pydantic only: ``tune validate`` must stay instant (no torch).
Paths are resolved in ``tune.config.paths``; checks that need the preset registry, the dataset cards
or the architecture live one room up, in ``tune.recipe``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

LLMJP_SFT = "LLM-jp-4 8B SFT recipe (NeMo), published by LLM-jp"
LLMJP_LORA = "LLM-jp's earlier LoRA recipes (llm-jp-sft)"
LLMJP_DPO = "LLM-jp-4 8B DPO recipe (NeMo), published by LLM-jp"

# How a key may differ when `tune run` continues an interrupted run from its checkpoint, declared
# per field in its `json_schema_extra` (tune.training.resume_check reads it). A field without it
# must be equal to the run's recorded value: a new field is safe by default.
RESUME_FREE = {"on_resume": "free"}  # the run continues exactly whatever its value
RESUME_LENGTH = {"on_resume": "length"}  # the run's length: only where no learning rate depends on it
RESUME_TOPOLOGY = {"on_resume": "topology"}  # the job's shape: only where the run continues exactly (cpt on ddp)


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    name: str = Field(
        description="Which model to tune: a preset name (see `tune.models.presets`, e.g. "
        "`llm-jp-4-8b`, `tiny-llm-jp-4-8b`), a Hugging Face id (`llm-jp/llm-jp-4-8b-instruct`) "
        "or a local checkpoint directory. Required."
    )
    variant: Literal["base", "instruct", "thinking"] | None = Field(
        default=None,
        description="For a real preset: which released checkpoint to start from. Default: the "
        "preset's default variant (`base`, as LLM-jp's own SFT starts from the base model). "
        "Ignored by tiny twins, which have a single random checkpoint; an error for hub ids/paths.",
    )
    path: str | None = Field(
        default=None,
        description="Local copy of the checkpoint named by `name` (a directory with config.json). "
        "Default: none, the hub (or its local cache) is used. Set it on machines without hub access. "
        "An error with a tiny twin (built locally) or when `name` is already a local folder.",
    )
    revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) to load. Default: none (main). "
        "An error with a tiny twin."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Dtype the weights are loaded in. Default `auto`: bfloat16 on a CUDA GPU (the "
        "released checkpoints are bf16), float32 on CPU.",
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention"] = Field(
        default="sdpa",
        description="Attention kernel passed to transformers. Default `sdpa` (runs everywhere). "
        "`flash_attention_2` needs a CUDA GPU and the flash_attn package: checked when `tune run` starts "
        "(tune.models.machine_checks), listed as deferred by `tune validate`.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow code from the checkpoint repository to run. Default false: tune loads "
        "LLM-jp-4 (including its tokenizer) without remote code. With true, `tune run` also needs "
        "`--trust-remote-code` on its command line (or TUNE_TRUST_REMOTE_CODE=1), and otherwise refuses "
        "naming the file and line that asked for it.",
    )
    router_aux_loss_coef: float | None = Field(
        default=None,
        ge=0,
        description="MoE models: weight of the router load-balancing loss added to the training loss "
        "(logged apart as `aux_loss`). Default: the checkpoint's own coefficient, written into the resolved "
        "recipe (0.01 for LLM-jp-4 32B-A3B: its config.json, and the aux weight of its pre-training); "
        "an error on dense models.",
    )
    output_router_logits: bool | None = Field(
        default=None,
        description="MoE models: add the router aux loss at all (transformers' `output_router_logits`). "
        "Default: true on MoE models, written into the resolved recipe (LLM-jp trained 32B-A3B with it; "
        "the checkpoint's config says false, which would train without it); an error on dense models.",
    )
    router_z_loss_coef: float = Field(
        default=0.0,
        ge=0,
        description="MoE models: weight of the router z-loss (ST-MoE), coefficient x mean over tokens of "
        "logsumexp(router logits)^2, computed per MoE layer on the pre-softmax logits and summed over layers, as "
        "Megatron-Core does (tune.training.router_losses); added to the training loss and logged apart as "
        "`z_loss`. Default 0 (off: SFT and DPO train as before). LLM-jp pre-trained LLM-jp-4 32B-A3B with 1e-3, "
        "which the pre-training recipes set. Above 0: an error on dense models and on dpo recipes.",
    )
    liger: bool = Field(
        default=False,
        description="Apply Liger's fused Triton kernels: RMSNorm, RoPE and SwiGLU on Llama (8B); RMSNorm, "
        "RoPE and the fused MoE experts on Qwen3-MoE (32B-A3B). The loss already runs through TRL's "
        "chunked fused LM head, so Liger's fused linear cross entropy stays off. Needs a CUDA GPU: "
        "`tune run` on a machine without one refuses before the model loads (no silent fallback, "
        "which would change the memory you planned for); `tune validate` lists it as deferred. Other "
        "architectures are refused. Default false.",
    )
    tokenizer: str | None = Field(
        default=None,
        description="Directory holding the tokenizer assets to use instead of the checkpoint's own "
        "(a `tokenizer.json`, or LLM-jp-4's SentencePiece `.model` + `chat_template.jinja` + "
        "`tokenizer_config.json`). Default: none, the checkpoint's own tokenizer.",
    )


class LoraSection(Section):
    r: int = Field(default=8, ge=1, le=4096, description=f"LoRA rank. Default 8 ({LLMJP_LORA}).")
    alpha: float = Field(default=32, gt=0, description=f"LoRA scaling alpha. Default 32 ({LLMJP_LORA}).")
    dropout: float = Field(
        default=0.05, ge=0, lt=1, description=f"Dropout on the LoRA input. Default 0.05 ({LLMJP_LORA})."
    )
    targets: Literal["all-linear"] | list[str] = Field(
        default="all-linear",
        description="Modules that get adapters: `all-linear` (every Linear but the output head and, "
        "on MoE models, the router) or a list of module name suffixes such as [q_proj, v_proj]. "
        "Default `all-linear`.",
    )
    experts: bool | None = Field(
        default=None,
        description="MoE models: also adapt the experts' fused weights (peft `target_parameters` on "
        "`mlp.experts.gate_up_proj` / `down_proj`). Default: true on MoE models; an error on dense ones.",
    )
    router: bool = Field(
        default=False,
        description="MoE models: also adapt the router (`mlp.gate`). Default false: the router keeps "
        "its pretrained balance.",
    )
    dora: bool = Field(
        default=False,
        description="DoRA (peft `use_dora`): split each adapted weight into a magnitude and a direction; "
        "LoRA trains the direction and one learned magnitude per output feature of each adapted Linear "
        "(that many more trainable parameters; slower steps than plain LoRA). Works with lora and qlora "
        "(4-bit Linear layers); peft cannot give it to MoE fused experts or the router, so on a MoE model "
        "it needs `experts: false` and `router: false` (refused at validation otherwise). Default false.",
    )
    rslora: bool = Field(
        default=False,
        description="Rank-stabilized LoRA (peft `use_rslora`): scale the adapter by alpha/sqrt(r) instead "
        "of alpha/r, so higher ranks keep learning at the same learning rate. Independent of `dora`. "
        "Default false (alpha/r).",
    )


class QLoraSection(Section):
    quant_type: Literal["nf4", "fp4"] = Field(
        default="nf4", description="4-bit data type of the frozen base weights. Default nf4 (LLM-jp's QLoRA recipes)."
    )
    double_quant: bool = Field(
        default=True, description="Quantize the quantization constants too. Default true (LLM-jp's QLoRA recipes)."
    )
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field(
        default="bfloat16", description="Dtype the 4-bit weights are computed in. Default bfloat16 (LLM-jp's QLoRA recipes)."
    )


# The losses TRL 1.16's DPOTrainer offers (trl/trainer/dpo_config.py `loss_type`; the branches of
# DPOTrainer._compute_loss). tests/methods/test_dpo.py pins this list equal to TRL's.
DpoLossType = Literal[
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
    "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
]
DPO_LOSS_TYPES = get_args(DpoLossType)


class DpoSection(Section):
    beta: float = Field(
        default=0.5,
        gt=0,
        description=f"DPO temperature: how far the policy may move from the reference (higher = closer; "
        f"for `ipo` the regulariser tau). Default 0.5 ({LLMJP_DPO}; LLM-jp-3 used 0.1).",
    )
    loss_type: DpoLossType = Field(
        default="sigmoid",
        description="DPO loss, any TRL's DPOTrainer offers: sigmoid (the original DPO loss), hinge, ipo, "
        "exo_pair, nca_pair, robust, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, "
        "sft, sigmoid_norm. Default `sigmoid`.",
    )
    label_smoothing: float = Field(
        default=0.0,
        ge=0,
        lt=0.5,
        description="Label smoothing: for `robust` the probability that a preference label is flipped "
        "(typically 0.1), for `exo_pair` its epsilon (must be > 0; the EXO paper uses 1e-3); ignored by "
        "the other losses. Default 0.",
    )

    @model_validator(mode="after")
    def _exo_needs_smoothing(self) -> "DpoSection":
        if self.loss_type == "exo_pair" and self.label_smoothing == 0:
            raise ValueError("`loss_type: exo_pair` needs `label_smoothing` > 0 (the EXO paper uses 1e-3)")
        return self


class MethodSection(Section):
    """What every method section holds: which weights train (`peft`) and the adapter settings.

    Each method is one subclass below, with its own `name` literal, its own keys and its default
    learning rates (``DEFAULT_LR`` / ``DEFAULT_MIN_LR``: what `train.lr` / `train.min_lr` become when
    the recipe names none, with their source). ``Method`` is their union, told apart by `name`;
    ``tune.config.methods.METHODS`` gives each its data kind and training function.
    """

    name: str = Field(description="Training method (each method section fixes its own).")
    peft: Literal["none", "lora", "qlora"] = Field(
        default="none",
        description="Parameter-efficient method: `none` trains every weight, `lora` trains low-rank "
        "adapters (`method.lora`), `qlora` trains them on a 4-bit base (`method.qlora`). Default `none`.",
    )
    lora: LoraSection | None = Field(
        default=None,
        description="LoRA settings, used when `peft` is lora or qlora. Default: the LoraSection defaults.",
    )
    qlora: QLoraSection | None = Field(
        default=None, description="4-bit base settings, used when `peft: qlora`. Default: the QLoraSection defaults."
    )

    DEFAULT_LR: ClassVar[float]
    DEFAULT_MIN_LR: ClassVar[float]
    DEFAULT_ADAM_BETA2: ClassVar[float]

    @model_validator(mode="before")
    @classmethod
    def _forget_other_methods_unset_sections(cls, data):
        """A section of another method written as null means "unset": resolved recipes of older tune
        versions wrote every method's section (`dpo: null` on an SFT run), and they must still load."""
        if isinstance(data, dict):
            own = set(cls.model_fields)
            others = {key for method in METHOD_SECTIONS for key in method.model_fields} - own
            data = {key: value for key, value in data.items() if not (key in others and value is None)}
        return data

    @model_validator(mode="after")
    def _sections_match_choices(self) -> "MethodSection":
        if self.lora is not None and self.peft == "none":
            raise ValueError("`method.lora` is set but `method.peft` is `none`; set `method.peft: lora` or drop `lora`")
        if self.qlora is not None and self.peft != "qlora":
            raise ValueError("`method.qlora` is set but `method.peft` is not `qlora`; set it or drop `qlora`")
        if self.peft in ("lora", "qlora") and self.lora is None:
            self.lora = LoraSection()
        if self.peft == "qlora" and self.qlora is None:
            self.qlora = QLoraSection()
        return self


class SftMethod(MethodSection):
    name: Literal["sft"] = Field(
        default="sft",
        description="`sft`: supervised fine-tuning on conversations, loss on the assistant's tokens. "
        "The default method when `method.name` is not written.",
    )

    DEFAULT_LR: ClassVar[float] = 2e-5  # LLMJP_SFT: lr 2e-5
    DEFAULT_MIN_LR: ClassVar[float] = 2e-6  # LLMJP_SFT: cosine to 2e-6
    DEFAULT_ADAM_BETA2: ClassVar[float] = 0.98  # LLMJP_SFT: Adam (0.9, 0.98)


class DpoMethod(MethodSection):
    name: Literal["dpo"] = Field(description="`dpo`: direct preference optimisation on chosen/rejected pairs.")
    dpo: DpoSection = Field(
        default_factory=DpoSection, description="DPO settings. Default: the DpoSection defaults."
    )

    DEFAULT_LR: ClassVar[float] = 9e-7  # LLMJP_DPO: lr 9e-7
    DEFAULT_MIN_LR: ClassVar[float] = 5e-7  # LLMJP_DPO: to 5e-7
    DEFAULT_ADAM_BETA2: ClassVar[float] = 0.98  # LLMJP_DPO: the SFT recipe's Adam (0.9, 0.98)


LLMJP_CPT = "LLM-jp's continued pre-training scripts (llm-jp/ft-llm-2026, midtraining)"
LLMJP_PRETRAIN = "LLM-jp-4 pre-training (Megatron-LM on ABCI 3.0, llm-jp/scripts pretrain/)"


class CptMethod(MethodSection):
    name: Literal["cpt"] = Field(
        description="`cpt`: continued pre-training, the causal-LM loss on every token of pre-tokenized corpora "
        "(`data.corpora`: Megatron indexed datasets), windows of `data.max_seq_len` + 1 tokens built and "
        "blended by Megatron-Core's own dataset code. Full fine-tuning by default; LoRA allowed."
    )

    DEFAULT_LR: ClassVar[float] = 3e-4  # LLMJP_CPT: lr 3e-4
    DEFAULT_MIN_LR: ClassVar[float] = 0.0  # LLMJP_CPT: decaying to 0
    DEFAULT_ADAM_BETA2: ClassVar[float] = 0.95  # LLMJP_CPT / LLMJP_PRETRAIN: Adam (0.9, 0.95)


# Every method section, by name. Adding a method: one class above, one entry here, one row in
# tune.config.methods.METHODS and one module in tune.methods.
METHOD_SECTIONS: tuple[type[MethodSection], ...] = (SftMethod, DpoMethod, CptMethod)
METHOD_NAMES: tuple[str, ...] = tuple(get_args(cls.model_fields["name"].annotation)[0] for cls in METHOD_SECTIONS)


def _method_tag(value) -> str | None:
    """The method a `method` section names: its `name` (`sft` when unwritten), None when it names
    none of METHOD_NAMES or is not a mapping (the error then says so)."""
    if isinstance(value, dict):
        name = value.get("name", "sft")
    else:
        name = getattr(value, "name", None)
    return name if isinstance(name, str) and name in METHOD_NAMES else None


Method = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for cls, name in zip(METHOD_SECTIONS, METHOD_NAMES))],  # noqa: UP007
    Discriminator(_method_tag, custom_error_type="method_choice", custom_error_message="no such method"),
]


class DatasetEntry(Section):
    card: str | None = Field(
        default=None,
        description="A dataset card name (`tune data ls`; files in `datasets_cards/`): the card says "
        "where the data lives, its format, licence and default weight. Give `card` or `path`.",
    )
    path: str | None = Field(
        default=None,
        description="A local file (.jsonl, .json, .parquet) or folder of rows. With `card`: a local copy "
        "of that card's dataset (read with the card's converter). Relative paths are read from the "
        "recipe file's folder; `tune:` paths name files shipped with tune. Default: none.",
    )
    format: str | None = Field(
        default=None,
        description="Converter for a `path` without `card`: messages, llmjp4_sft, sharegpt, alpaca, "
        "preference, text (`tune data ls` lists them). Default `messages`.",
    )
    fields: dict[str, str] | None = Field(
        default=None,
        description="Column names of the source, when they differ from the converter's defaults "
        "(e.g. {instruction: question, output: answer}); only fields the converter reads. Default: the "
        "card's or converter's.",
    )
    use: Literal["dataset", "samples"] = Field(
        default="dataset",
        description="For a card: `dataset` reads the real data (from `path`, else the Hugging Face "
        "Hub), `samples` the few hand-written rows bundled next to the card (demos, tests). Default `dataset`.",
    )
    weight: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Upsampling factor: whole repeats of the rows, the fractional part drawn with the "
        "seed (LLM-jp upsamples e.g. AnswerCarefully x16). At most 1000. Default: the card's default "
        "weight, else 1. Not with `share`.",
    )
    share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Fraction of the training mixture this dataset makes up (rows drawn with the seed, "
        "repeating when short). Either every dataset has a share (summing to 1) or none. Default: none.",
    )
    max_rows: int | None = Field(
        default=None, ge=1, description="Use at most this many rows (drawn with the seed) before weighting. Default: all."
    )

    @model_validator(mode="after")
    def _card_or_path(self) -> "DatasetEntry":
        if self.card is None and self.path is None:
            raise ValueError("a dataset needs `card: NAME` or `path: FILE`")
        if self.card is not None and self.format is not None:
            raise ValueError("`format` is only for a `path` without `card` (a card names its own converter)")
        if self.card is None and self.use == "samples":
            raise ValueError("`use: samples` needs a `card`")
        if self.card is not None and self.use == "samples" and self.path is not None:
            raise ValueError("`use: samples` reads the card's bundled rows; drop `path` or set `use: dataset`")
        if self.weight is not None and self.share is not None:
            raise ValueError("give `weight` (an upsampling factor) or `share` (a fraction of the mixture), not both")
        return self


def _shares_add_up(shares: list[float | None], item: str) -> bool:
    """Whether the ``item``s of a mixture give shares; ValueError unless every one or none does and they add up to 1."""
    if all(share is None for share in shares):
        return False
    if any(share is None for share in shares):
        raise ValueError(f"either every {item} has a `share` or none has")
    if abs(sum(shares) - 1) > 1e-6:
        plural = "corpora's" if item == "corpus" else f"{item}s'"
        raise ValueError(f"the {plural} shares add up to {sum(shares):g}; they must add up to 1")
    return True


class DataSection(Section):
    datasets: list[DatasetEntry] = Field(min_length=1, description="The datasets of the mixture. Required, at least one.")
    max_seq_len: int = Field(
        default=4096, ge=16, le=1_048_576, description=f"Longest training sequence in tokens. Default 4096 ({LLMJP_SFT})."
    )
    template: Literal["chat", "instruct_ja"] = Field(
        default="chat",
        description="How conversations become text: `chat` renders with the tokenizer's own chat "
        "template (LLM-jp-4's Harmony template); `instruct_ja` is the `### 指示: / ### 応答:` prompt "
        "LLM-jp's own tuning of base models uses. Default `chat`.",
    )
    train_on: Literal["all_assistant", "last_assistant"] = Field(
        default="all_assistant",
        description="Which assistant turns carry the loss: every one, or only the last of each "
        "conversation. Thinking is trained only where the template keeps it (the last turn). Default `all_assistant`.",
    )
    conversation_start_date: str = Field(
        default="2026-04-01",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Date stamped into the LLM-jp-4 system block (YYYY-MM-DD). Pinned so that the "
        "rendered training text does not change with the day it is prepared. Default 2026-04-01.",
    )
    reasoning_effort: Literal["low", "medium", "high"] = Field(
        default="medium",
        description="`Reasoning:` level written into the system block for rows that do not carry their "
        "own (LLM-jp-4's SFT rows do). Default `medium` (the template's own default).",
    )
    overlong: Literal["drop", "truncate"] = Field(
        default="drop",
        description="A sample longer than `max_seq_len`: `drop` it or `truncate` it. Either way the "
        "count is reported. Default `drop` (a truncated answer teaches the model to stop mid-sentence).",
    )
    on_bad_row: Literal["skip", "error"] = Field(
        default="skip",
        description="A malformed source row: `skip` it (counted by reason and reported with examples "
        "after preparation) or `error` (stop at the first, naming file and row). Default `skip`.",
    )
    dedup: bool = Field(
        default=True, description="Remove exact duplicate records (within and across datasets) before weighting. Default true."
    )
    eval_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Share of the unique rows held out for evaluation, before upsampling; capped by "
        "`eval_max_rows`. Default 0.1 (LLM-jp-3's instruct3 holds out min(1000, 10%); ft-llm-2026's 8B SFT "
        "min(100, 10%) per dataset, see `eval_split`).",
    )
    eval_max_rows: int = Field(
        default=1000, ge=0, description="Most rows held out for evaluation (per dataset with `eval_split: per_dataset`). "
        "Default 1000 (LLM-jp-3's instruct3: min(1000, 10%))."
    )
    eval_split: Literal["global", "per_dataset"] = Field(
        default="global",
        description="How eval rows are held out. `global`: min(`eval_max_rows`, `eval_fraction` x rows) drawn "
        "with the seed from all datasets' rows together (LLM-jp-3's instruct3 holds out min(1000, 10%)). "
        "`per_dataset`: each dataset holds out its first min(`eval_max_rows`, floor(`eval_fraction` x its "
        "rows)) rows in source order, as LLM-jp's ft-llm-2026 SFT does with min(100, 10%) "
        "(tuning/sft_dataset.py load_sft_datasets). Default `global`.",
    )
    mixture_size: int | None = Field(
        default=None,
        ge=1,
        description="Training rows in the mixture when datasets use `share`. Default: the rows the "
        "datasets hold after the eval split.",
    )
    packing: Literal["none", "isolated", "concat"] = Field(
        default="none",
        description="How samples fill the training rows. `none`: one sample per row, batches padded. "
        "`isolated`: several whole samples share one `max_seq_len` row, positions restart per sample and "
        "no sample attends to another (docs/packing.md). `concat`: LLM-jp's own SFT packing "
        "(ft-llm-2026 tuning/sft_dataset.py `chunk_stream`): every sample's tokens joined into one stream, "
        "cut into windows of `max_seq_len` + 1 tokens that train `max_seq_len` next-token targets, "
        "positions not reset, samples attending to the ones before them in the window, long samples split "
        "across windows, the last partial window dropped (docs/llmjp-published-sft.md). `false` / `true` "
        "are read as `none` / `isolated`. Default `none`.",
    )
    cache: bool = Field(
        default=True,
        description="Reuse prepared data from `$TUNE_CACHE/data` when the data, tokenizer, template "
        "and options are the same. Default true.",
        json_schema_extra=RESUME_FREE,
    )
    num_proc: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Processes that render and tokenize samples while preparing data. The prepared data "
        "is byte-identical whatever the number (it is not part of the cache key). Default 1.",
        json_schema_extra=RESUME_FREE,
    )

    @field_validator("packing", mode="before")
    @classmethod
    def _packing_booleans(cls, value):
        """Recipes written before the packing modes say `false` / `true`."""
        if isinstance(value, bool):
            return "isolated" if value else "none"
        return value

    @model_validator(mode="after")
    def _shares_all_or_none(self) -> "DataSection":
        if not _shares_add_up([d.share for d in self.datasets], "dataset") and self.mixture_size is not None:
            raise ValueError("`mixture_size` applies only when the datasets use `share`")
        return self


class CorpusEntry(Section):
    """One pre-tokenized corpus of a `cpt` recipe: a Megatron indexed dataset (`PREFIX.bin` + `PREFIX.idx`)."""

    prefix: str = Field(
        description="The corpus's path without `.bin`/`.idx` (Megatron's `--data-path` prefix), as `tune data "
        "tokenize --out` writes it and LLM-jp distributes its corpora. Relative paths are read from "
        "`data.corpus_root` when set, else from the folder of the file that wrote them; `tune:REL` names a "
        "corpus bundled with tune. Required."
    )
    name: str | None = Field(
        default=None,
        description="Label in reports and eval metrics (`eval_<name>_loss`, `eval_<name>_perplexity`). "
        "Default: the prefix's last path component.",
        json_schema_extra=RESUME_FREE,
    )
    repeat: float | None = Field(
        default=None,
        gt=0,
        description="Repeat factor: the corpus's blend weight is its token count (read from the `.idx`) x this, "
        "normalized over the corpora, as LLM-jp passes `weight prefix` pairs to Megatron (phase 1: code x8, "
        "Japanese CC x4, ...). Default 1 when `share` is not given.",
    )
    share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Target fraction of the training samples instead of `repeat`: every corpus has one or "
        "none has, and they add up to 1. Default: none.",
    )

    @model_validator(mode="after")
    def _repeat_or_share(self) -> "CorpusEntry":
        if self.repeat is not None and self.share is not None:
            raise ValueError("give `repeat` (tokens x repeat decide the weight) or `share` (a fraction), not both")
        return self


class CorpusDataSection(Section):
    """The data of a `cpt` recipe: corpora of token ids, not conversations (tune.data.corpus_pipeline)."""

    corpora: list[CorpusEntry] = Field(
        min_length=1, description="The pre-tokenized corpora blended for training. Required, at least one."
    )
    corpus_root: str | None = Field(
        default=None,
        description="Folder that relative `prefix`es (of `corpora` and `eval_corpora`) are read from, e.g. where "
        "LLM-jp's corpus v4 lies on your cluster: `tune run recipe.yaml data.corpus_root=/groups/...`. Default: "
        "none (relative prefixes are read from the recipe's folder).",
        json_schema_extra=RESUME_FREE,
    )
    max_seq_len: int = Field(
        default=4096, ge=16, le=1_048_576,
        description=f"Tokens per training sequence; each sample is a window of this + 1 tokens (inputs and "
        f"shifted labels), as Megatron's GPTDataset builds them. Default 4096 ({LLMJP_PRETRAIN}: seq 4096).",
    )
    eval_fraction: float = Field(
        default=0.001, ge=0, lt=0.5,
        description="Fraction of each corpus's documents held out (Megatron's `--split`, per corpus) for the "
        "held-out perplexity logged at `train.eval_steps`. LLM-jp's runs use `--split 1,0,0`, holding out "
        "nothing: set 0 to train on exactly their documents. Default 0.001 (1 document in 1000).",
    )
    eval_samples: int = Field(
        default=32, ge=1,
        description="Held-out windows of `max_seq_len` + 1 tokens evaluated per corpus (and per eval corpus) at "
        "each evaluation. Default 32.",
        json_schema_extra=RESUME_FREE,
    )
    eval_corpora: list[CorpusEntry] = Field(
        default_factory=list,
        description="Corpora read only for held-out perplexity, e.g. a general Japanese corpus to watch "
        "forgetting while adapting to a domain; never trained on (`repeat`/`share` do not apply). Default: none.",
        json_schema_extra=RESUME_FREE,
    )

    @model_validator(mode="after")
    def _shares_all_or_none(self) -> "CorpusDataSection":
        _shares_add_up([c.share for c in self.corpora], "corpus")
        for index, entry in enumerate(self.eval_corpora):
            if entry.repeat is not None or entry.share is not None:
                raise ValueError(f"`eval_corpora.{index}` is read for evaluation only; drop its `repeat`/`share`")
        return self


def _data_tag(value) -> str:
    """Which data section a `data` mapping is: `corpora` (cpt) when it names corpora, else conversations."""
    if isinstance(value, dict):
        return "corpora" if "corpora" in value else "datasets"
    return "corpora" if isinstance(value, CorpusDataSection) else "datasets"


Data = Annotated[
    Union[Annotated[DataSection, Tag("datasets")], Annotated[CorpusDataSection, Tag("corpora")]],  # noqa: UP007
    Discriminator(_data_tag),
]


class TrainSection(Section):
    epochs: float = Field(default=2, gt=0, le=1000, description=f"Passes over the data, at most 1000. Default 2 ({LLMJP_SFT}).",
                          json_schema_extra=RESUME_LENGTH)
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps to run; overrides `epochs` when set. Default: none.",
        json_schema_extra=RESUME_LENGTH,
    )
    lr: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description=f"Peak learning rate. Default: 2e-5 for sft ({LLMJP_SFT}), 9e-7 for dpo ({LLMJP_DPO}).",
    )
    min_lr: float | None = Field(
        default=None,
        ge=0,
        description=f"Learning rate the cosine schedule ends at. Default: 2e-6 for sft ({LLMJP_SFT}), "
        f"5e-7 for dpo ({LLMJP_DPO}).",
    )
    scheduler: Literal["cosine", "linear", "constant", "wsd"] = Field(
        default="cosine",
        description=f"Learning-rate schedule after warmup: `cosine` (to `min_lr`), `linear` (to 0), `constant`, or "
        f"`wsd` (warmup-stable-decay: constant at `lr`, then `train.decay_style` to `min_lr` over the last "
        f"`decay_steps`, Megatron's WSD as {LLMJP_PRETRAIN} and {LLMJP_CPT} use it). Default `cosine` ({LLMJP_SFT}).",
    )
    decay_steps: int | None = Field(
        default=None, ge=1,
        description=f"With `scheduler: wsd`: optimizer steps of the decay phase, at the end of the run "
        f"(Megatron's `--lr-wsd-decay-iters`; 250 of 500 in {LLMJP_CPT}). Give this or `decay_fraction`. Default: none.",
    )
    decay_fraction: float | None = Field(
        default=None, gt=0, le=1,
        description="With `scheduler: wsd`: the decay phase as a fraction of the run's optimizer steps (rounded "
        "down, at least 1). Give this or `decay_steps`. Default: none.",
    )
    decay_style: Literal["minus_sqrt", "linear", "cosine"] = Field(
        default="minus_sqrt",
        description=f"With `scheduler: wsd`: the decay's shape, Megatron's `--lr-wsd-decay-style`: `minus_sqrt` "
        f"lr = min + (1 - sqrt(x)) (max - min), `linear` 1 - x, `cosine` (1 + cos(pi x)) / 2, x the fraction "
        f"of the decay done. Default `minus_sqrt` ({LLMJP_PRETRAIN}, {LLMJP_CPT}).",
    )
    warmup_steps: int = Field(default=20, ge=0, description=f"Linear warmup steps. Default 20 ({LLMJP_SFT}).")
    min_lr_hold_steps: int = Field(
        default=0,
        ge=0,
        description="With `scheduler: cosine`, hold `min_lr` for the last N optimizer steps: the cosine reaches "
        "`min_lr` N steps before the end (NeMo's CosineAnnealing `constant_steps`, 100 in LLM-jp's ft-llm-2026 "
        "8B SFT config tuning/configs/model/llmjp4-8b.yaml). The warmup is linear from 0, lr x step / "
        "warmup_steps, the formula NeMo uses when constant_steps > 0 and transformers always uses. Default 0 "
        "(no hold).",
    )
    per_device_batch_size: int = Field(default=1, ge=1, description="Sequences per device per micro-step. Default 1.")
    grad_accumulation: int | None = Field(
        default=None,
        ge=1,
        json_schema_extra=RESUME_TOPOLOGY,
        description="Micro-steps per optimizer step (global batch = nodes x processes_per_node x "
        "per_device_batch_size x this). Default: derived from `global_batch_size` when that is set, else 1; "
        "given together with `global_batch_size`, the two must agree.",
    )
    global_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Sequences per optimizer step across the whole job. With it the recipe means the same "
        "batch on any topology: `grad_accumulation` = this / (nodes x processes_per_node x "
        "per_device_batch_size), refused when that is not a whole number. Default: none (`grad_accumulation` "
        f"decides). LLM-jp's SFT uses 64 ({LLMJP_SFT}), its DPO 256.",
    )
    master_weights: Literal["fp32", "none"] = Field(
        default="fp32",
        description="Full fine-tuning (`method.peft: none`): `fp32` keeps fp32 master weights and optimizer "
        "states and computes in `train.precision` (bf16 on a GPU), as LLM-jp's NeMo recipes do "
        "(megatron_amp_O2, bf16-mixed): FSDP2's mixed precision, DeepSpeed's bf16, or autocast on one "
        "process. `none` updates the weights in `model.dtype` directly: with bf16 weights most small "
        "updates round away (at lr 2e-5 about 70% of LLM-jp-4 8B's weights do not change in a step). "
        "LoRA and QLoRA train fp32 adapters either way. Default `fp32`.",
    )
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "adafactor", "sgd"] = Field(
        default="adamw_torch", description="Optimizer (transformers name). Default `adamw_torch` (Adam with decoupled weight decay)."
    )
    adam_beta1: float = Field(default=0.9, ge=0, lt=1, description=f"Adam beta1. Default 0.9 ({LLMJP_SFT}).")
    adam_beta2: float | None = Field(
        default=None, ge=0, lt=1,
        description=f"Adam beta2. Default: the method's, 0.98 for sft and dpo ({LLMJP_SFT}), 0.95 for cpt "
        f"({LLMJP_CPT}, {LLMJP_PRETRAIN}).",
    )
    adam_epsilon: float = Field(default=1e-8, gt=0, description="Adam epsilon. Default 1e-8.")
    weight_decay: float = Field(default=0.1, ge=0, description=f"Weight decay. Default 0.1 ({LLMJP_SFT}).")
    max_grad_norm: float = Field(default=1.0, ge=0, description=f"Gradient clipping norm (0 = off). Default 1.0 ({LLMJP_SFT}).")
    seed: int = Field(default=42, ge=0, le=2**32 - 1,
                      description="Seed for weights init of new parameters, data order and dropout (numpy takes "
                      "at most 2**32 - 1). Default 42.")
    eval_steps: int | None = Field(
        default=None,
        ge=1,
        description="Evaluate on the held-out rows (`data.eval_fraction`) every N steps; an error when "
        "nothing is held out. Default: none, once at the end of training (when rows were held out).",
    )
    resume: bool = Field(
        default=True,
        description="When `output.dir` holds checkpoints of an interrupted run (preempted, killed), "
        "continue from the latest complete one, if this recipe continues it exactly (else `tune run` "
        "refuses, listing the keys that differ); with false, `tune run` refuses such a folder (start over with "
        "`output.overwrite=true`). Default true.",
        json_schema_extra=RESUME_FREE,
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in backward to save memory. Default false."
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto",
        description=f"Mixed precision. Default `auto`: bf16 on a GPU that supports it ({LLMJP_SFT} trains in bf16), fp32 on CPU.",
    )

    @model_validator(mode="after")
    def _min_lr_below_lr(self) -> "TrainSection":
        if self.lr is not None and self.min_lr is not None and self.min_lr > self.lr:
            raise ValueError(f"`train.min_lr` ({self.min_lr}) is above `train.lr` ({self.lr}); it must not be")
        if self.min_lr_hold_steps and self.scheduler != "cosine":
            raise ValueError(f"`train.min_lr_hold_steps` holds the cosine's minimum, and `train.scheduler` is "
                             f"`{self.scheduler}`; set scheduler: cosine or min_lr_hold_steps: 0")
        if self.scheduler == "wsd":
            if (self.decay_steps is None) == (self.decay_fraction is None):
                raise ValueError("`train.scheduler: wsd` needs the decay phase's length: give `train.decay_steps` "
                                 "or `train.decay_fraction` (one of them)")
            if self.max_steps is not None:  # with epochs the steps are known at `tune run` (tune.training.wsd_schedule)
                decay = self.decay_steps or max(1, int(self.decay_fraction * self.max_steps))
                if decay > self.max_steps - self.warmup_steps:
                    raise ValueError(f"the decay ({decay} steps) is longer than the {self.max_steps} steps of "
                                     f"`train.max_steps` less the {self.warmup_steps} of `train.warmup_steps`; lower "
                                     "`train.decay_steps` / `train.decay_fraction` or the warmup")
        elif self.decay_steps is not None or self.decay_fraction is not None:
            raise ValueError(f"`train.decay_steps` / `train.decay_fraction` set the decay of `scheduler: wsd`, and "
                             f"`train.scheduler` is `{self.scheduler}`; set scheduler: wsd or drop them")
        return self


class OutputSection(Section):
    dir: str | None = Field(
        default=None,
        description="Where the run writes its outputs. Default: `runs/<recipe name>-<date-time>` "
        "under the current directory, fixed when the recipe is resolved.",
        json_schema_extra=RESUME_FREE,
    )
    save_steps: int | None = Field(
        default=None, ge=1, description="Write a resumable checkpoint every N steps. Default: none (only `final/`).",
        json_schema_extra=RESUME_FREE,
    )
    save_total_limit: int = Field(default=2, ge=1, description="Checkpoints kept on disk (oldest deleted first). Default 2.",
                                  json_schema_extra=RESUME_FREE)
    overwrite: bool = Field(
        default=False,
        description="Start over in an `output.dir` that holds a run (finished or interrupted, with the "
        "same or another recipe): its checkpoints and outputs are removed, and said so. Never recorded "
        "in the run's recipe.yaml, so a resubmitted job does not wipe itself. Default false.",
        json_schema_extra=RESUME_FREE,
    )


class LoggingSection(Section):
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list,
        description="Experiment trackers to report to, besides tune's own `metrics.jsonl` and "
        "`training_curve.svg` (passed as is to transformers' `report_to`; each tracker's own package "
        "must be installed: `tensorboard`, `wandb`, `mlflow`, `trackio`; trackio logs to a local folder "
        "unless its environment names a Space). Default: none.",
        json_schema_extra=RESUME_FREE,
    )
    logging_steps: int = Field(default=10, ge=1, description="Log loss and throughput every N optimizer steps. Default 10.",
                               json_schema_extra=RESUME_FREE)


class LaunchSection(Section):
    nodes: int = Field(default=1, ge=1, le=4096, description="Number of machines. Default 1.",
                       json_schema_extra=RESUME_TOPOLOGY)
    processes_per_node: int = Field(
        default=1, ge=1, le=64, description="Processes (one per GPU) on each machine. Default 1.",
        json_schema_extra=RESUME_TOPOLOGY,
    )
    strategy: Literal["ddp", "fsdp2", "deepspeed_zero2", "deepspeed_zero3"] = Field(
        default="ddp",
        description="How the processes share the work, through accelerate: `ddp` (every process holds the "
        "whole model), `fsdp2` (PyTorch FSDP2: parameters, gradients and optimizer states sharded), "
        "`deepspeed_zero2` (optimizer states and gradients sharded) or `deepspeed_zero3` (parameters too; "
        "needs the `tune[deepspeed]` extra). Default `ddp`.",
    )
    cpu_offload: bool = Field(
        default=False,
        description="With `fsdp2` or `deepspeed_zero*`: keep the sharded parameters and optimizer states in CPU "
        "memory between uses (fits larger models on fewer GPUs, at a cost in speed). Default false.",
    )
    timeout_minutes: float = Field(
        default=30,
        gt=0,
        le=1440,
        description="How long a rendezvous or a collective may wait for a peer before the job fails with one "
        "clear message (a peer that never starts, a rank stuck elsewhere). Default 30.",
        json_schema_extra=RESUME_FREE,
    )
    preempt_signals: list[Literal["SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGHUP"]] = Field(
        default_factory=lambda: ["SIGTERM", "SIGUSR1"],
        description="Signals that make every rank finish its step, save one complete checkpoint at the same "
        "step and exit with the `preempted` status (75), so the job can be resubmitted and continue. PBS "
        "and SLURM send SIGTERM before a kill; tune's job scripts send SIGUSR1 a set time before walltime. "
        "Default [SIGTERM, SIGUSR1].",
        json_schema_extra=RESUME_FREE,
    )


class Recipe(Section):
    """A complete, validated recipe. `tune validate` prints it resolved; `tune run` trains it."""

    description: str = Field(default="", description="One line saying what the recipe does (shown by `tune ls`).",
                             json_schema_extra=RESUME_FREE)
    model: ModelSection
    method: Method = Field(default_factory=SftMethod, description="The training method. Default: `sft` with its defaults.")
    data: Data = Field(description="The training data: `datasets` (conversations or preference pairs) for sft and "
                       "dpo, `corpora` (pre-tokenized corpora) for cpt. Required.")
    train: TrainSection = Field(default_factory=TrainSection)
    output: OutputSection = Field(default_factory=OutputSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    launch: LaunchSection = Field(default_factory=LaunchSection)

    @model_validator(mode="after")
    def _batch_and_master_weights(self) -> "Recipe":
        """Derive `train.grad_accumulation` from `train.global_batch_size` (refusing a topology that cannot
        reach it), and refuse 16-bit weights where fp32 master weights are asked for."""
        train, launch = self.train, self.launch
        per_step = launch.nodes * launch.processes_per_node * train.per_device_batch_size
        if train.global_batch_size is not None:
            accumulation, rest = divmod(train.global_batch_size, per_step)
            if rest or not accumulation:
                raise ValueError(
                    f"`train.global_batch_size` {train.global_batch_size} is not a whole multiple of launch.nodes x "
                    f"launch.processes_per_node x train.per_device_batch_size = {launch.nodes} x "
                    f"{launch.processes_per_node} x {train.per_device_batch_size} = {per_step}; change one of them")
            if train.grad_accumulation is not None and train.grad_accumulation != accumulation:
                raise ValueError(
                    f"`train.grad_accumulation` {train.grad_accumulation} and `train.global_batch_size` "
                    f"{train.global_batch_size} disagree ({per_step} sequences per micro-step x "
                    f"{train.grad_accumulation} = {per_step * train.grad_accumulation}); give one of them")
            train.grad_accumulation = accumulation
        elif train.grad_accumulation is None:
            train.grad_accumulation = 1
        if self.method.peft == "none" and train.master_weights == "fp32" and self.model.dtype in ("bfloat16", "float16"):
            raise ValueError(
                f"`model.dtype: {self.model.dtype}` with full fine-tuning holds 16-bit weights, and `train.master_weights` "
                "is `fp32`: set model.dtype: auto (fp32 masters, computed in train.precision) or "
                "train.master_weights: none (train the 16-bit weights directly)")
        return self

    @model_validator(mode="after")
    def _method_learning_rates(self) -> "Recipe":
        """Fill `train.lr` / `train.min_lr` with the method's published values when unset."""
        if self.train.lr is None:
            self.train.lr = self.method.DEFAULT_LR
        if self.train.min_lr is None:
            self.train.min_lr = min(self.method.DEFAULT_MIN_LR, self.train.lr)
        if self.train.min_lr > self.train.lr:
            raise ValueError(f"`train.min_lr` ({self.train.min_lr}) is above `train.lr` ({self.train.lr}); it must not be")
        if self.train.adam_beta2 is None:
            self.train.adam_beta2 = self.method.DEFAULT_ADAM_BETA2
        return self

    @model_validator(mode="after")
    def _data_fits_the_method(self) -> "Recipe":
        """`cpt` trains on `data.corpora`; the other methods on `data.datasets`."""
        corpora = isinstance(self.data, CorpusDataSection)
        if self.method.name == "cpt" and not corpora:
            raise ValueError("method `cpt` trains on pre-tokenized corpora: write `data.corpora: [{prefix: PATH}, ...]` "
                             "(see `tune data tokenize`) instead of `data.datasets`")
        if self.method.name != "cpt" and corpora:
            raise ValueError(f"`data.corpora` (pre-tokenized corpora) is the data of method `cpt`, and this recipe's "
                             f"method is `{self.method.name}`; set `method.name: cpt` or give `data.datasets`")
        return self
