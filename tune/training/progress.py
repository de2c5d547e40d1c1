"""A trainer callback that shows progress (step, loss, tokens/s, ETA) and writes metrics.jsonl.

Each log event of the trainer becomes one JSON line in ``metrics.jsonl`` (step, epoch, loss,
learning rate, grad norm, tokens seen, tokens/s, elapsed seconds, plus every other number the
trainer logged, such as DPO rewards or the MoE router aux loss) and, on the main process, one
printed line. The callback also remembers the last training loss and the throughput for the
run's manifest.
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

    def __init__(self, metrics_path: Path, printer=print):
        self.metrics_path = metrics_path
        self.printer = printer
        self.started = None
        self.last_loss = None
        self.tokens_seen = 0
        self.tokens_per_second = 0.0
        self.elapsed = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        self.metrics_path.write_text("")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs:  # the end-of-training summary; recorded in the manifest instead
            return
        self.elapsed = time.perf_counter() - self.started
        self.tokens_seen = int(state.num_input_tokens_seen or 0)
        self.tokens_per_second = self.tokens_seen / self.elapsed if self.elapsed > 0 else 0.0
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
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if state.is_world_process_zero:
            self.printer(self._line(state, record))

    def _line(self, state, record) -> str:
        total = state.max_steps or 0
        step = state.global_step
        eta = self.elapsed / step * (total - step) if step else 0.0
        return (
            f"step {step:>5}/{total} | loss {record['loss']:.4f} | lr {record['lr'] or 0:.2e} | "
            f"{record['tokens_per_s']:,.0f} tok/s | ETA {timedelta(seconds=round(eta))}"
        )
