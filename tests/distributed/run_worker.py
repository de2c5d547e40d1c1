"""One process of a launched test job: `tune` itself, with optional instruments a test asks for through
the environment (the job's processes are separate interpreters: a test cannot monkeypatch them).

    python run_worker.py VERB ARGS...          (under torchrun, or alone), exactly as `python -m tune VERB ARGS...`

    TUNE_TEST_COUNT_BUILDS=FILE     append one line (the rank) to FILE each time this process prepares
                                    data (tune.data.pipeline._build), to count preparations per job
    TUNE_TEST_FAKE_VERSION=R:PKG=V  on rank R, report package PKG as version V to the preflight (a node
                                    with another environment, simulated)
    TUNE_TEST_SLOW_BUILD=SECONDS    make each data preparation of this process take SECONDS longer
    TUNE_TEST_EXIT_FILE=FILE        append `RANK STATUS` to FILE when this process's `tune` returns or exits
"""

from __future__ import annotations

import os
import sys


def instrument() -> None:
    rank = os.environ.get("RANK", "0")
    count_file = os.environ.get("TUNE_TEST_COUNT_BUILDS")
    if count_file:
        import tune.data.pipeline as pipeline

        real_build = pipeline._build

        def counted(*args, **kwargs):
            with open(count_file, "a") as handle:
                handle.write(f"{rank}\n")
            return real_build(*args, **kwargs)

        pipeline._build = counted
    slow = float(os.environ.get("TUNE_TEST_SLOW_BUILD") or 0)
    if slow:
        import time

        import tune.data.pipeline as pipeline

        quick_build = pipeline._build

        def slow_build(*args, **kwargs):
            time.sleep(slow)
            return quick_build(*args, **kwargs)

        pipeline._build = slow_build
    fake = os.environ.get("TUNE_TEST_FAKE_VERSION")
    if fake:
        target, _, package_version = fake.partition(":")
        package, _, version = package_version.partition("=")
        if target == rank:
            import tune.training.preflight as preflight

            real_versions = preflight.installed_versions
            preflight.installed_versions = lambda: {**real_versions(), package: version}


if __name__ == "__main__":
    instrument()
    from tune.cli import main

    status = 1
    try:
        status = main(sys.argv[1:])
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    finally:
        if os.environ.get("TUNE_TEST_EXIT_FILE"):
            with open(os.environ["TUNE_TEST_EXIT_FILE"], "a") as handle:
                handle.write(f"{os.environ.get('RANK', '0')} {status}\n")
    sys.exit(status)
