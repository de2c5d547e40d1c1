"""Where a process stands in a job (tune.training.distributed.world) under each launcher, and the
collectives on one process (identities, no process group needed)."""

from __future__ import annotations

from tune.training import distributed
from tune.training.distributed import World, world


def test_torchrun_names():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}
    assert world(env) == World(rank=3, local_rank=1, world_size=4, node_rank=1, local_world_size=2)
    assert not world(env).is_main and not world(env).is_local_main and world(env).nodes == 2


def test_open_mpi_names_when_mpirun_starts_tune_directly():
    env = {"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_COMM_WORLD_NODE_RANK": "1"}
    assert world(env) == World(rank=2, local_rank=0, world_size=4, node_rank=1, local_world_size=2)


def test_torchrun_names_win_when_mpirun_started_torchrun():
    # mpirun -np 2 -npernode 1 starting one torchrun per node: Open MPI's names describe the launchers
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "RANK": "5", "WORLD_SIZE": "16",
           "LOCAL_RANK": "5", "LOCAL_WORLD_SIZE": "8", "GROUP_RANK": "0"}
    assert world(env) == World(rank=5, local_rank=5, world_size=16, node_rank=0, local_world_size=8)


def test_one_process_alone():
    assert world({}) == World() and World().is_main and not World().distributed


def test_collectives_are_identities_on_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    distributed.ensure_process_group(0.1)  # nothing to make
    distributed.barrier()
    assert distributed.broadcast_from_main({"a": 1}) == {"a": 1}
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    assert distributed.all_gather_objects("x") == ["x"]
