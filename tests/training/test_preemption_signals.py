"""The preemption signals of one process (tune.training.preemption), without training: what a signal does
outside the training loop (stop at once, exit 75, say how to continue), inside it (wait for the step
boundary, then save and stop), and the record a job script reads."""

import os
import signal

import pytest
from transformers import TrainerControl, TrainerState

from tune.errors import Preempted, UserError
from tune.training.preemption import (
    PreemptionCallback,
    Watch,
    default_continue_command,
    read_record,
    watch,
    write_record,
)


def test_outside_the_training_loop_a_preemption_signal_stops_at_once_with_status_75():
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(Preempted) as stopped:
        with watch(["SIGTERM", "SIGUSR1"], "tune run /runs/a/recipe.yaml --trust-remote-code"):
            os.kill(os.getpid(), signal.SIGUSR1)  # Python runs the handler before the next line
    error = stopped.value
    assert isinstance(error, UserError) and error.exit_status == 75
    assert error.signal == "SIGUSR1" and error.step is None
    assert str(error).endswith("with:\n  tune run /runs/a/recipe.yaml --trust-remote-code")
    assert signal.getsignal(signal.SIGUSR1) is before  # the process's own handling is back


def test_inside_the_training_loop_a_signal_is_only_noted_and_acted_on_at_the_step_boundary():
    callback = PreemptionCallback()
    with watch(["SIGTERM"]) as here:
        here.deferred = True
        callback.watch = here
        state, control = TrainerState(), TrainerControl()
        state.global_step = 3
        callback.on_step_end(None, state, control)
        assert not (control.should_save or control.should_training_stop)  # no signal: nothing changes
        os.kill(os.getpid(), signal.SIGTERM)  # arrives during step 4: the process goes on
        assert here.received == "SIGTERM" and here.received_after == 3
        state.global_step = 4
        callback.on_step_end(None, state, control)
    assert control.should_save and control.should_training_stop
    assert callback.stopped == (4, "SIGTERM", 3)


def test_a_signal_not_named_in_preempt_signals_is_left_to_the_process():
    with watch(["SIGUSR1"]) as here:
        assert signal.getsignal(signal.SIGUSR2) is not here._handle
        assert signal.getsignal(signal.SIGUSR1) == here._handle


def test_the_record_a_job_script_reads(tmp_path):
    assert read_record(tmp_path) is None
    checkpoint = tmp_path / "checkpoints" / "checkpoint-7"
    command = default_continue_command(tmp_path)
    write_record(tmp_path, step=7, signal_name="SIGUSR1", received_after=6, checkpoint=checkpoint, command=command)
    record = read_record(tmp_path)
    assert record["preempted"] is True and record["step"] == 7 and record["signal"] == "SIGUSR1"
    assert record["signal_after_step"] == 6 and record["checkpoint"] == str(checkpoint)
    assert record["continue"] == f"tune run {tmp_path / 'recipe.yaml'}"
    assert [p.name for p in tmp_path.iterdir()] == ["tune-preempted.json"]  # nothing left aside


def test_the_default_signals_are_those_the_schema_defaults_to():
    from tune.config.schema import LaunchSection

    assert tuple(LaunchSection().preempt_signals) == Watch().signals


def test_a_signal_agreed_at_the_last_step_saves_it_and_lets_the_run_finish():
    callback = PreemptionCallback()
    with watch(["SIGTERM"]) as here:
        here.deferred = True
        callback.watch = here
        os.kill(os.getpid(), signal.SIGTERM)
        state, control = TrainerState(), TrainerControl()
        state.global_step = state.max_steps = 12
        callback.on_step_end(None, state, control)
    assert control.should_save and not control.should_training_stop
    assert callback.stopped is None  # train() returns normally: final/ and the manifest are written
