"""A trainer callback that shows progress (step, loss, tokens/s, ETA) and writes metrics.jsonl.

Each log event of the trainer becomes one JSON line in ``metrics.jsonl`` (step, epoch, loss,
learning rate, grad norm, tokens seen, tokens/s, elapsed seconds, plus every other number the
trainer logged, such as DPO rewards or the MoE router aux loss) and, on the main process, one
printed line. A DPO run's line also shows the reward margin and accuracy (TRL's
`rewards/margins`, `rewards/accuracies`). The callback also remembers the last training loss, the
last record and the throughput for the run's manifest.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from transformers import TrainerCallback


_RENAMED = {"loss", "learning_rate", "grad_norm", "epoch", "num_input_tokens_seen"}


class ProgressCallback(TrainerCallback):
    """Prints one line per log event and appends the same figures to ``metrics_path``."""

    def __init__(self, metrics_path: Path, printer=print, aux_loss_coef: float | None = None):
        self.metrics_path = metrics_path
        self.aux_loss_coef = aux_loss_coef
        self.printer = printer
        self.started = None
        self.last_loss = None
        self.last_record = {}
        self.tokens_seen = 0
        self.tokens_per_second = 0.0
        self.elapsed = 0.0
        self.start_step = self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        kept = []  # a resumed run keeps the lines up to its checkpoint's step
        if state.global_step and self.metrics_path.exists():
            kept = [line for line in self.metrics_path.read_text().splitlines()
                    if json.loads(line)["step"] <= state.global_step]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))
        self.start_step, self.start_tokens = state.global_step, int(state.num_input_tokens_seen or 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs:  # the end-of-training summary; recorded in the manifest instead
            return
        self.elapsed = time.perf_counter() - self.started
        self.tokens_seen = int(state.num_input_tokens_seen or 0)
        session_tokens = self.tokens_seen - self.start_tokens  # a resumed run counts from its restart
        self.tokens_per_second = session_tokens / self.elapsed if self.elapsed > 0 else 0.0
        self.last_loss = float(logs["loss"])
        record = {
            "step": state.global_step,
            "epoch": round(float(state.epoch or 0), 4),
            "loss": self.last_loss,
            "lr": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_seen": self.tokens_seen,
            "tokens_per_s": round(self.tokens_per_second, 1),
            "elapsed_s": round(self.elapsed, 2),
        }
        # everything else the trainer logged (DPO rewards and margins, MoE aux loss, ...), as is
        record.update({k: v for k, v in logs.items() if k not in _RENAMED and isinstance(v, (int, float))})
        if "aux_loss" in logs and self.aux_loss_coef:
            # the logged loss includes coef x aux loss; show the language-model (or DPO) part apart
            record[_main_loss_key(record)] = self.last_loss - self.aux_loss_coef * logs["aux_loss"]
        self.last_record = record
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if state.is_world_process_zero:
            self.printer(self._line(state, record))

    def _line(self, state, record) -> str:
        total = state.max_steps or 0
        step = state.global_step
        done = step - self.start_step
        eta = self.elapsed / done * (total - step) if done else 0.0
        main = _main_loss_key(record)
        aux = (f" ({main.split('_')[0]} {record[main]:.4f} + aux {record['aux_loss']:.4f} x {self.aux_loss_coef:g})"
               if main in record else "")
        return (
            f"step {step:>5}/{total} | loss {record['loss']:.4f}{aux} | {preference_figures(record)}"
            f"lr {record['lr'] or 0:.2e} | {record['tokens_per_s']:,.0f} tok/s | ETA {timedelta(seconds=round(eta))}"
        )


def _main_loss_key(record: dict) -> str:
    return "dpo_loss" if "rewards/margins" in record else "lm_loss"


def preference_figures(record: dict) -> str:
    """`margin M | acc A | ` for a record with DPO rewards, empty otherwise."""
    if "rewards/margins" not in record:
        return ""
    return f"margin {record['rewards/margins']:.4f} | acc {record.get('rewards/accuracies', 0):.2f} | "
