"""Nothing torn is trusted: a checkpoint counts only once its completion marker is written, last."""

import json
from pathlib import Path

from tune.training.resume import COMPLETE, incomplete_checkpoints, is_complete, latest_checkpoint, mark_complete


def checkpoint(run_dir: Path, step: int, complete: bool = True, state: str | None = None) -> Path:
    """A checkpoint folder as transformers writes it (weights, optimizer, trainer state), marked or not."""
    folder = run_dir / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"w" * 64)
    (folder / "optimizer.pt").write_bytes(b"o" * 128)
    (folder / "trainer_state.json").write_text(state if state is not None else json.dumps({"global_step": step}))
    if complete:
        mark_complete(folder)
    return folder


def test_a_save_cut_short_is_never_the_checkpoint_to_resume_from(tmp_path):
    checkpoint(tmp_path, 4)
    torn = checkpoint(tmp_path, 8, complete=False, state='{"global_step": 8, "log_hi')  # killed mid-write
    whole_but_unmarked = checkpoint(tmp_path, 12, complete=False)  # killed after the state, before the marker
    assert latest_checkpoint(tmp_path).name == "checkpoint-4"
    assert incomplete_checkpoints(tmp_path) == [torn, whole_but_unmarked]


def test_the_marker_lists_every_file_and_a_file_changed_after_it_voids_it(tmp_path):
    folder = checkpoint(tmp_path, 6)
    record = json.loads((folder / COMPLETE).read_text())
    assert record == {"step": 6, "files": {"adapter_model.safetensors": 64, "optimizer.pt": 128,
                                           "trainer_state.json": len('{"global_step": 6}')}}
    assert is_complete(folder)
    (folder / "optimizer.pt").write_bytes(b"o" * 10)  # truncated behind tune's back
    assert not is_complete(folder) and latest_checkpoint(tmp_path) is None


def test_a_marker_of_another_step_or_an_unreadable_one_does_not_count(tmp_path):
    folder = checkpoint(tmp_path, 6)
    marker = json.loads((folder / COMPLETE).read_text())
    (folder / COMPLETE).write_text(json.dumps({**marker, "step": 5}))
    assert not is_complete(folder)
    (folder / COMPLETE).write_text('{"step": 6, "fi')
    assert not is_complete(folder)


def test_rotation_happens_after_the_marker_and_counts_complete_checkpoints_only(tmp_path):
    from tune.training.resume import rotate

    for step in (2, 4):
        checkpoint(tmp_path, step)
    torn = checkpoint(tmp_path, 5, complete=False)
    newest = checkpoint(tmp_path, 6)
    removed = rotate(tmp_path, keep=1, newest=newest)
    assert sorted(p.name for p in removed) == ["checkpoint-2", "checkpoint-4", "checkpoint-5"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-6"] and not torn.exists()


def test_the_checkpoint_guard_marks_what_the_trainer_saved_and_takes_over_rotation(tmp_path):
    from types import SimpleNamespace

    from tune.training.checkpoint_guard import CheckpointGuard, take_over_rotation

    args = SimpleNamespace(save_total_limit=2, output_dir=str(tmp_path / "checkpoints"))
    guard = CheckpointGuard(tmp_path, take_over_rotation(args))
    assert args.save_total_limit is None and guard.keep == 2  # transformers no longer deletes before the marker
    for step in (3, 6, 9):
        checkpoint(tmp_path, step, complete=False)
        guard.on_save(args, SimpleNamespace(global_step=step, is_world_process_zero=True), None)
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == ["checkpoint-6", "checkpoint-9"]
    assert latest_checkpoint(tmp_path).name == "checkpoint-9"
