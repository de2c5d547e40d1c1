"""A trainer callback that shows progress (step, loss, tokens/s, ETA), writes metrics.jsonl and
keeps the run's figures across resumes.

Each training log event of the trainer becomes one JSON line in ``metrics.jsonl`` (step, epoch, loss,
learning rate, grad norm, tokens seen over the run, tokens/s and elapsed seconds of this process,
plus every other number the trainer logged, such as DPO rewards or the MoE router losses `aux_loss` and
`z_loss`, with `lm_loss` (or `dpo_loss`): the loss less the router losses' weighted terms),
written by the main process, and, on the main process, one printed line. A DPO run's line also
shows the reward margin and accuracy (TRL's `rewards/margins`, `rewards/accuracies`). With ``evaluations``
(method cpt's held-out perplexity), an evaluation's figures (`eval_<name>_loss`, `eval_<name>_perplexity`, ...)
get a line of their own, with the step and epoch but no `loss` (a training line of the same step may come
before it); otherwise they go to the manifest only, as before.

A resumed run keeps the lines up to its checkpoint's step. A torn last line (a write cut by the
interruption) is cut back to the last whole line, and any other line that is not a record is
dropped; each is reported with its line number, never a traceback on every rerun.

The run's figures survive a resume: the callback is an ``ExportableState``, so every checkpoint's
``trainer_state.json`` records the sessions so far (one per process that trained the run: the steps
it took the run from and to, its tokens and training time up to that checkpoint) and the sum of the
logged losses with the number of steps they cover. ``run_figures`` turns them into the manifest's
figures (tune.methods.finish): losses over every step of the run, throughput of this process, totals.
A checkpoint written before this record existed resumes with the losses of the kept lines of
``metrics.jsonl`` and an earlier session of unknown time.
"""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState


_RENAMED = {"loss", "learning_rate", "grad_norm", "epoch", "num_input_tokens_seen"}


class ProgressCallback(TrainerCallback, ExportableState):
    """Prints one line per log event, appends the same figures to ``metrics_path`` and keeps the
    run's figures (module docstring). ``state()`` is what checkpoints record; transformers'
    ``restore_callback_states_from_checkpoint`` stays off: ``on_train_begin`` reads it back."""

    def __init__(self, metrics_path: Path, printer=print, aux_loss_coef: float | None = None, z_loss_coef: float = 0.0,
                 evaluations: bool = False):
        self.metrics_path = metrics_path
        self.evaluations = evaluations  # write each evaluation's figures too (method cpt: held-out perplexity)
        self.aux_loss_coef = aux_loss_coef
        self.z_loss_coef = z_loss_coef  # tune.training.router_losses: the loss holds z_loss_coef x z_loss
        self.printer = printer
        self.started = None
        self.last_loss = None
        self.last_record = {}
        self.tokens_seen = 0
        self.tokens_per_second = 0.0
        self.elapsed = 0.0
        self.start_step = self.start_tokens = 0
        self.step = 0  # the last optimizer step this process finished
        self.sessions: list[dict] = []  # the sessions before this process's, as its checkpoint recorded them
        self.past_loss_sum, self.past_loss_steps = 0.0, 0  # their logged losses x the steps each covers
        self.loss_sum, self.loss_steps = 0.0, 0  # the same for this process's logged losses
        self.logged_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.start_step, self.start_tokens = state.global_step, int(state.num_input_tokens_seen or 0)
        self.step, self.tokens_seen, self.logged_step = self.start_step, self.start_tokens, self.start_step
        kept = []
        if state.global_step:  # a resumed run keeps the lines up to its checkpoint's step
            records, problems = read_metrics(self.metrics_path)
            kept = [record for record in records if record["step"] <= state.global_step]
            if state.is_world_process_zero:
                for problem in problems:
                    self.printer(problem)
            self._restore(state, kept)
            # a checkpoint from before tune recorded its figures lacks the entry transformers updates at each save
            state.stateful_callbacks.setdefault(type(self).__name__, self.state())
        if state.is_world_process_zero:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self.metrics_path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def _restore(self, state, kept: list[dict]) -> None:
        """The earlier sessions and their losses, from the checkpoint's record (or ``kept`` lines)."""
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        figures = saved.get("attributes") if isinstance(saved, dict) else None
        sessions = (figures or {}).get("sessions") or []
        if sessions and sessions[-1].get("to_step") == state.global_step:
            self.sessions = sessions
            self.past_loss_sum, self.past_loss_steps = float(figures["loss_sum"]), int(figures["loss_steps"])
        else:
            self.sessions = [{"from_step": None, "to_step": state.global_step, "tokens": None, "train_time_s": None}]
            previous = 0
            for record in kept:  # each logged loss is the mean over the steps since the line before
                if isinstance(record.get("loss"), (int, float)):
                    self.past_loss_sum += record["loss"] * (record["step"] - previous)
                    self.past_loss_steps += record["step"] - previous
                previous = record["step"]
        trained = [record for record in kept if isinstance(record.get("loss"), (int, float))]  # not eval lines
        if trained:
            self.last_loss, self.last_record = float(trained[-1]["loss"]), trained[-1]

    def on_step_end(self, args, state, control, **kwargs):
        self.step, self.tokens_seen = state.global_step, int(state.num_input_tokens_seen or 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs:  # an evaluation, or the end-of-training summary (recorded in the manifest instead)
            evaluated = {k: v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, (int, float))}
            if evaluated and self.evaluations:
                self._write_evaluation(state, evaluated)
            return
        self.elapsed = time.perf_counter() - self.started
        self.tokens_seen = int(state.num_input_tokens_seen or 0)
        session_tokens = self.tokens_seen - self.start_tokens  # a resumed run counts from its restart
        self.tokens_per_second = session_tokens / self.elapsed if self.elapsed > 0 else 0.0
        self.last_loss = float(logs["loss"])
        # the trainer logs the mean loss of the steps since its previous log (or since this process began)
        covered = state.global_step - self.logged_step
        self.loss_sum, self.loss_steps = self.loss_sum + self.last_loss * covered, self.loss_steps + covered
        self.logged_step = state.global_step
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
        weighted = self._router_terms(logs)
        if weighted:
            # the logged loss includes coef x each router loss; show the language-model (or DPO) part apart
            record[_main_loss_key(record)] = self.last_loss - sum(coef * value for _, value, coef in weighted)
        self.last_record = record
        if state.is_world_process_zero:
            with open(self.metrics_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            self.printer(self._line(state, record))

    def _write_evaluation(self, state, evaluated: dict) -> None:
        """One metrics line for an evaluation's figures (`eval_<name>_loss`, `eval_<name>_perplexity`, ...) with
        its step and epoch (no `loss`: the training record of that step has it), and one printed line."""
        record = {"step": state.global_step, "epoch": round(float(state.epoch or 0), 4), **evaluated}
        if state.is_world_process_zero:
            with open(self.metrics_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            shown = [f"{key.removeprefix('eval_')} {value:.4f}" for key, value in evaluated.items()
                     if key.endswith(("_loss", "_perplexity"))]
            self.printer(f"eval  {state.global_step:>5}/{state.max_steps or 0} | " + " | ".join(shown))

    def _router_terms(self, logs: dict) -> list[tuple[str, float, float]]:
        """(name, logged value, coefficient) of each router loss the logged loss holds (`aux`, `z`)."""
        terms = (("aux", "aux_loss", self.aux_loss_coef), ("z", "z_loss", self.z_loss_coef))
        return [(name, logs[key], coef) for name, key, coef in terms if coef and isinstance(logs.get(key), (int, float))]

    def state(self) -> dict:
        """What a checkpoint records (module docstring): the sessions up to now, this one included,
        and the logged losses of the run."""
        sessions = list(self.sessions)
        if self.started is not None:
            sessions.append(self._this_session(time.perf_counter() - self.started))
        return {"args": {}, "attributes": {"sessions": sessions, "loss_sum": self.past_loss_sum + self.loss_sum,
                                           "loss_steps": self.past_loss_steps + self.loss_steps}}

    def _this_session(self, train_time_s: float) -> dict:
        return {"from_step": self.start_step, "to_step": self.step, "tokens": self.tokens_seen - self.start_tokens,
                "train_time_s": round(train_time_s, 2)}

    def run_figures(self, state, session_mean_loss: float | None, train_time_s: float) -> dict:
        """The manifest's training figures after ``trainer.train()`` (``state`` is the trainer's state,
        ``session_mean_loss`` and ``train_time_s`` what ``train()`` returned: the mean loss and
        the training time of this process's steps). Each key names what it covers:

            steps                  optimizer steps of the run, every session
            tokens_seen            tokens trained over the run, every session
            final_train_loss       the last logged training loss
            mean_train_loss        mean training loss over the run's steps (every session)
            mean_train_loss_steps  the steps that mean covers: all of them, unless an earlier
                                   session's checkpoint fell between two log lines (the losses of
                                   the steps between its last log line and that checkpoint were
                                   never logged)
            resumed_from_step      the checkpoint step this process continued from (None: it began the run)
            train_time_s           this process's training time
            tokens_per_s           tokens this process trained / its training time (None when it
                                   trained no step)
            sessions               per process that trained the run, in order: from_step, to_step,
                                   tokens and train_time_s (an earlier one's up to the checkpoint
                                   the next continued from; None where a checkpoint from before
                                   this record did not say)
            run_train_time_s       the sessions' training times added up (None when one is unknown)
        """
        self.step, self.tokens_seen = state.global_step, int(state.num_input_tokens_seen or 0)
        session_steps = state.global_step - self.start_step
        session_tokens = self.tokens_seen - self.start_tokens
        if session_steps and session_mean_loss is not None and math.isfinite(session_mean_loss):
            # train()'s mean covers every step of this process, the ones after its last log line too
            loss_sum, loss_steps = session_mean_loss * session_steps, session_steps
        else:
            loss_sum, loss_steps = self.loss_sum, self.loss_steps
        loss_sum, loss_steps = loss_sum + self.past_loss_sum, loss_steps + self.past_loss_steps
        sessions = list(self.sessions) + ([self._this_session(train_time_s)] if session_steps else [])
        times = [session["train_time_s"] for session in sessions]
        return {
            "steps": state.global_step,
            "tokens_seen": self.tokens_seen,
            "final_train_loss": self.last_loss,
            "mean_train_loss": loss_sum / loss_steps if loss_steps else None,
            "mean_train_loss_steps": loss_steps,
            "resumed_from_step": self.start_step or None,
            "train_time_s": round(train_time_s, 2),
            "tokens_per_s": round(session_tokens / train_time_s, 1) if session_steps and train_time_s > 0 else None,
            "sessions": sessions,
            "run_train_time_s": round(sum(times), 2) if None not in times else None,
        }

    def _line(self, state, record) -> str:
        total = state.max_steps or 0
        step = state.global_step
        done = step - self.start_step
        eta = self.elapsed / done * (total - step) if done else 0.0
        main = _main_loss_key(record)
        terms = "".join(f" + {name} {value:.4f} x {coef:g}" for name, value, coef in self._router_terms(record))
        aux = f" ({main.split('_')[0]} {record[main]:.4f}{terms})" if main in record else ""
        return (
            f"step {step:>5}/{total} | loss {record['loss']:.4f}{aux} | {preference_figures(record)}"
            f"lr {record['lr'] or 0:.2e} | {record['tokens_per_s']:,.0f} tok/s | ETA {timedelta(seconds=round(eta))}"
        )


def read_metrics(path: Path) -> tuple[list[dict], list[str]]:
    """The records of the metrics file at ``path`` (none when it does not exist) and one line per
    problem found: a torn last line (cut: the file ends at its last whole line) or another line
    that is not a record with an integer `step` (dropped), each named by file and line number."""
    if not path.exists():
        return [], []
    lines = path.read_bytes().split(b"\n")
    records, problems = [], []
    last = max((number for number, line in enumerate(lines, 1) if line.strip()), default=0)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and type(record.get("step")) is int:
            records.append(record)
        elif number == last:
            problems.append(f"{path}:{number}: its last line was torn by an interrupted write ({len(line)} bytes); "
                            "cut back to the last whole line")
        else:
            problems.append(f"{path}:{number}: not a metrics record; dropped (the training curve lacks it)")
    return records, problems


def _main_loss_key(record: dict) -> str:
    return "dpo_loss" if "rewards/margins" in record else "lm_loss"


def preference_figures(record: dict) -> str:
    """`margin M | acc A | ` for a record with DPO rewards, empty otherwise."""
    if "rewards/margins" not in record:
        return ""
    return f"margin {record['rewards/margins']:.4f} | acc {record.get('rewards/accuracies', 0):.2f} | "
