#!/bin/bash
# @@DESCRIPTION@@
# A PBS Professional job (ABCI 3.0), written by `tune launch pbs` into <run folder>/job/pbs.sh:
#   qsub @@SCRIPT@@
# It trains the recipe frozen next to it (job/recipe.yaml: the resolved recipe, output.dir pinned to
# this run folder), so a job that waits in the queue for days runs what was launched. Logs go to
# job/logs/<job id>.log. A save signal reaches every tune process @@SAVE_BEFORE_S@@ s before the
# walltime (a timer here: PBS itself only warns with SIGTERM shortly before its kill); the run saves one
# complete checkpoint and the job resubmits itself (at most @@MAX_RESUBMITS@@ times) to continue it.
# Exit status: 0 finished, 75 preempted (checkpoint saved), anything else failed.
#PBS -P @@GROUP@@
#PBS -q @@QUEUE@@
#PBS -v @@PBS_VARIABLES@@
#PBS -l select=@@NODES@@
#PBS -l walltime=@@WALLTIME@@
#PBS -N @@JOB_NAME@@
#PBS -j oe

set -uo pipefail
RUN_DIR=@@RUN_DIR@@
JOB_DIR="$RUN_DIR/job"
JOB_SCRIPT="$JOB_DIR/pbs.sh"
MAX_RESUBMITS=@@MAX_RESUBMITS@@
SAVE_SIGNAL=USR1
NODES=@@NODES@@
. "$JOB_DIR/common.sh"
tune_job_begin "${PBS_JOBID:-local-$$}"
tune_job_timer $((@@WALLTIME_S@@ - @@SAVE_BEFORE_S@@ - SECONDS))

tune_job_resubmit() {
    qsub -v "@@PBS_VARIABLES@@,TUNE_RESUBMITS=$1" "$JOB_SCRIPT"
}

cd "${PBS_O_WORKDIR:-$RUN_DIR}"
if ! type module >/dev/null 2>&1 && [ -f /etc/profile.d/modules.sh ]; then
    . /etc/profile.d/modules.sh
fi
@@MODULE_LOADS@@
export NCCL_DEBUG=${NCCL_DEBUG:-WARN} CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-1} PYTHONFAULTHANDLER=1

if [ -z "${PBS_NODEFILE:-}" ] || [ ! -r "$PBS_NODEFILE" ]; then
    tune_job_say "no readable \$PBS_NODEFILE: submit this script with qsub"
    exit 2
fi
if [ "$(wc -l <"$PBS_NODEFILE")" -ne "$NODES" ]; then
    tune_job_say "\$PBS_NODEFILE lists $(wc -l <"$PBS_NODEFILE") node(s), the recipe asks for $NODES (launch.nodes): submit with -l select=$NODES"
    exit 2
fi
MASTER_ADDR=$(head -n 1 "$PBS_NODEFILE")
MASTER_PORT=${MASTER_PORT:-$((10000 + RANDOM % 1000))}
STATUS_DIR="$JOB_DIR/status/${PBS_JOBID:-local-$$}"
rm -rf "$STATUS_DIR"
FORWARD=()
for name in PATH LD_LIBRARY_PATH PYTHONPATH OMP_NUM_THREADS NCCL_DEBUG CUDA_DEVICE_MAX_CONNECTIONS PYTHONFAULTHANDLER \
    $(compgen -v TUNE_ || true) $(compgen -v HF_ || true) TOKENIZERS_PARALLELISM; do
    if [ -n "${!name+x}" ]; then
        FORWARD+=(-x "$name")
    fi
done
tune_job_say "$NODES node(s) from \$PBS_NODEFILE, first $MASTER_ADDR; launching with mpirun"
# One launcher per node: mpirun starts node.sh once per line of $PBS_NODEFILE (one line per node on
# ABCI), and node.sh starts torchrun with that node's rank. TUNE_MPIRUN_ARGS adds options
# (e.g. --allow-run-as-root --oversubscribe on a test machine).
tune_job_launch mpirun -np "$NODES" --hostfile "$PBS_NODEFILE" --map-by slot -bind-to none "${FORWARD[@]}" \
    ${TUNE_MPIRUN_ARGS:-} "$JOB_DIR/node.sh" "$MASTER_ADDR" "$MASTER_PORT" "$STATUS_DIR"
tune_job_finish "$TUNE_LAUNCHER_RC" "$STATUS_DIR"
