# Shared by tune's job scripts; `tune launch` copies it into <run folder>/job/common.sh and the job
# script (pbs.sh or slurm.sh, next to it) sources it. Nothing here is scheduler-specific.
#
# The outcome of a job, from the exit status of its launcher (mpirun / srun) and the exit status every
# tune process recorded as it ended (tune writes it into $TUNE_EXIT_STATUS_DIR/rank-<global rank>):
#   finished   the launcher exited 0
#   preempted  rank 0 recorded 75 (tune.errors.Preempted: every rank finished its step and one complete
#              checkpoint was saved at the same step) and no rank recorded anything else; a rank that
#              recorded nothing was ended by its launcher after rank 0 had left (collateral)
#   failed     anything else; the job then exits with the launcher's status (1 if that was 75, so that
#              75 always means "preempted, resubmit")
#
# Variables the job script sets before sourcing: JOB_DIR (this folder), MAX_RESUBMITS, SAVE_SIGNAL.

TUNE_EXIT_PREEMPTED=75
: "${TUNE_RESUBMITS:=0}"

tune_job_say() {
    echo "[tune job $(date -u +%H:%M:%S)] $*"
}

# tune_job_begin JOB_ID: everything from here on goes to $JOB_DIR/logs/JOB_ID.log.
tune_job_begin() {
    mkdir -p "$JOB_DIR/logs"
    exec >>"$JOB_DIR/logs/$1.log" 2>&1
    tune_job_say "job $1 on $(hostname); resubmission $TUNE_RESUBMITS of at most $MAX_RESUBMITS"
    # A save signal or SIGTERM before the launcher runs is remembered and passed on once it does.
    TUNE_SAVE_REQUESTED=
    trap 'TUNE_SAVE_REQUESTED=$SAVE_SIGNAL' "$SAVE_SIGNAL"
    trap 'TUNE_SAVE_REQUESTED=SIGTERM' TERM
}

# tune_job_timer SECONDS: send the save signal to this job script after SECONDS (the job's own
# walltime minus the save lead); the script forwards it to the launcher (tune_job_launch).
tune_job_timer() {
    if [ "$1" -le 0 ]; then
        return
    fi
    local script_pid=$$
    (sleep "$1" && kill -s "$SAVE_SIGNAL" "$script_pid") &
    TUNE_TIMER_PID=$!
    tune_job_say "the save signal ($SAVE_SIGNAL) goes to every tune process in $1 s"
}

tune_job_stop_timer() {
    if [ -n "${TUNE_TIMER_PID:-}" ]; then
        pkill -P "$TUNE_TIMER_PID" 2>/dev/null || true
        kill "$TUNE_TIMER_PID" 2>/dev/null || true
        TUNE_TIMER_PID=
    fi
}

tune_job_forward() {
    TUNE_INTERRUPTED=1
    tune_job_say "$1: asking every tune process to save a checkpoint and stop ($SAVE_SIGNAL to the launcher)"
    kill -s "$SAVE_SIGNAL" "$TUNE_LAUNCHER_PID" 2>/dev/null || true
}

# tune_job_launch COMMAND...: run the launcher in the background and wait for it; the save signal and
# SIGTERM (a scheduler's warning before a kill) reaching this script are forwarded to it as the save
# signal. Sets TUNE_LAUNCHER_RC.
tune_job_launch() {
    "$@" &
    TUNE_LAUNCHER_PID=$!
    trap "tune_job_forward $SAVE_SIGNAL" "$SAVE_SIGNAL"
    trap "tune_job_forward SIGTERM" TERM
    if [ -n "${TUNE_SAVE_REQUESTED:-}" ]; then
        tune_job_forward "$TUNE_SAVE_REQUESTED (before the launcher started)"
    fi
    TUNE_LAUNCHER_RC=
    while [ -z "$TUNE_LAUNCHER_RC" ]; do
        TUNE_INTERRUPTED=0
        local status=0
        wait "$TUNE_LAUNCHER_PID" || status=$?
        if [ "$TUNE_INTERRUPTED" = 1 ] && [ "$status" -gt 128 ]; then
            continue  # wait was cut short by a trapped signal; the launcher is still running
        fi
        TUNE_LAUNCHER_RC=$status
    done
    trap - "$SAVE_SIGNAL" TERM
    tune_job_stop_timer
}

# tune_job_outcome RC STATUS_DIR: prints finished, preempted or failed (see the top of this file).
tune_job_outcome() {
    local rc=$1 dir=$2 file
    if [ "$rc" -eq 0 ]; then
        echo finished
        return
    fi
    if [ ! -f "$dir/rank-0" ] || [ "$(cat "$dir/rank-0")" != "$TUNE_EXIT_PREEMPTED" ]; then
        echo failed
        return
    fi
    for file in "$dir"/rank-*; do
        if [ "$(cat "$file")" != "$TUNE_EXIT_PREEMPTED" ]; then
            echo failed
            return
        fi
    done
    echo preempted
}

# tune_job_finish RC STATUS_DIR: say what happened, resubmit a preempted job (tune_job_resubmit, defined
# by the job script) at most MAX_RESUBMITS times, and exit with the job's status: 0 finished, 75
# preempted, else the failure's.
tune_job_finish() {
    local rc=$1 outcome
    outcome=$(tune_job_outcome "$1" "$2")
    case "$outcome" in
        finished)
            tune_job_say "finished: the run is complete in $RUN_DIR"
            exit 0
            ;;
        preempted)
            if [ "$TUNE_RESUBMITS" -lt "$MAX_RESUBMITS" ]; then
                local next=$((TUNE_RESUBMITS + 1))
                tune_job_say "preempted: a complete checkpoint is saved; resubmitting this job ($next of $MAX_RESUBMITS) to continue the run"
                if ! tune_job_resubmit "$next"; then
                    tune_job_say "the resubmission failed; continue the run by submitting $JOB_SCRIPT again"
                fi
            else
                tune_job_say "preempted: a complete checkpoint is saved; not resubmitting (--max-resubmits $MAX_RESUBMITS reached); continue the run by submitting $JOB_SCRIPT again"
            fi
            exit "$TUNE_EXIT_PREEMPTED"
            ;;
        *)
            tune_job_say "failed: the launcher exited with status $rc (the tune processes' messages are above)"
            if [ "$rc" -eq "$TUNE_EXIT_PREEMPTED" ]; then
                exit 1
            fi
            exit "$rc"
            ;;
    esac
}
