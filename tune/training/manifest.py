"""manifest.json: what a run was made of and what it measured, for reproducing and comparing runs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("tune", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "bitsandbytes")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on (None when one is not installed)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_commit() -> dict[str, object] | None:
    """The git commit of tune's own source tree and whether it has uncommitted changes; None outside git."""
    tree = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def write_manifest(path: Path, **fields) -> dict:
    """Write manifest.json with the environment (versions, git, python, platform) plus ``fields``.
    It is written beside ``path`` and renamed into place: a run folder never holds half a manifest
    (its presence says the run finished). What the training figures mean: docs/manifest.md."""
    manifest = {
        "packages": package_versions(),
        "git": source_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **fields,
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(partial, path)
    return manifest
