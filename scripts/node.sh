#!/bin/bash
# One node of a tune job. `tune launch` writes it into <run folder>/job/node.sh; the job script's
# launcher starts it once per node (mpirun with one slot per node, or srun --ntasks-per-node 1).
#
#   node.sh MASTER_ADDR MASTER_PORT STATUS_DIR
#
# It starts torchrun with this node's rank (Open MPI's OMPI_COMM_WORLD_RANK, else SLURM_PROCID);
# torchrun meets the other nodes' torchruns at MASTER_ADDR:MASTER_PORT (static rendezvous, bounded by
# launch.timeout_minutes: a node that never comes fails the job instead of hanging it) and starts
# launch.processes_per_node tune processes here, each running the run folder's frozen recipe. The
# save signal and SIGTERM reaching torchrun are forwarded to those processes, and torchrun waits up to
# the save lead for them to save and leave before it kills them. Every tune process records its exit
# status in STATUS_DIR (the job script reads it: 75 means preempted).
set -euo pipefail
if [ "$#" -ne 3 ]; then
    echo "usage: node.sh MASTER_ADDR MASTER_PORT STATUS_DIR (started by the job script's launcher)" >&2
    exit 2
fi
NODE_RANK=${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-}}
if [ -z "$NODE_RANK" ]; then
    echo "node.sh: no node rank (neither OMPI_COMM_WORLD_RANK nor SLURM_PROCID is set): start the job script, not this file" >&2
    exit 2
fi
# Open MPI's names describe the node launchers, not the tune processes: torchrun's names are the world.
for name in $(compgen -v OMPI_COMM_WORLD_ || true); do
    unset "$name"
done
export TUNE_EXIT_STATUS_DIR=$3
mkdir -p "$TUNE_EXIT_STATUS_DIR"
echo "[tune node $NODE_RANK] $(hostname): torchrun with @@PROCESSES_PER_NODE@@ process(es), rendezvous at $1:$2"
exec @@PYTHON@@ -m torch.distributed.run \
    --nnodes @@NODES@@ --nproc-per-node @@PROCESSES_PER_NODE@@ --node-rank "$NODE_RANK" \
    --master-addr "$1" --master-port "$2" --rdzv-conf timeout=@@RENDEZVOUS_TIMEOUT_S@@ --max-restarts 0 \
    --signals-to-handle @@SIGNALS@@ --shutdown-timeout @@SHUTDOWN_TIMEOUT_S@@ \
    -m tune run @@RECIPE@@@@TRUST_REMOTE_CODE@@
