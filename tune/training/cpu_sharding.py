"""The one patch of accelerate tune carries: select FSDP on CPU when an FSDP plugin is given.

Why this file exists: accelerate (1.16, ``AcceleratorState.__init__`` in accelerate/state.py)
selects ``DistributedType.FSDP`` only for GPU-like distributed types (MULTI_GPU, MULTI_NPU, ...).
On CPU (gloo) the same Trainer arguments leave it at ``MULTI_CPU``, and the "FSDP" run silently
trains plain DDP: every rank holds the whole model, and a test of FSDP would pass without sharding
anything. FSDP2 itself (``fully_shard`` on a CPU device mesh) works on CPU, so tune's CPU tests of
`launch.strategy: fsdp2` (and anyone training on CPU nodes) need accelerate to take that path.

What it does: wraps ``AcceleratorState.__init__`` so that, right after accelerate's own
initialisation, a state that was given an ``fsdp_plugin`` and settled on ``MULTI_CPU`` is switched
to ``FSDP`` exactly as accelerate does for a GPU: the plugin stored, its mixed-precision policy set
from the state's mixed precision, ``PartialState`` told the same distributed type. Nothing changes
on a GPU, without an FSDP plugin, or on one process.

Installed by tune.training.arguments when `launch.strategy: fsdp2` runs without CUDA. Pinned by
tests/distributed/test_cpu_sharding.py, which fails when accelerate starts selecting FSDP on CPU by
itself (then delete this file and its call) or when the patch stops taking effect.
"""

from __future__ import annotations

_ORIGINAL_INIT = None


def install() -> None:
    """Apply the patch (idempotent)."""
    global _ORIGINAL_INIT
    from accelerate.state import AcceleratorState

    if _ORIGINAL_INIT is not None:
        return
    _ORIGINAL_INIT = AcceleratorState.__init__

    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        _ORIGINAL_INIT(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        _select_fsdp_on_cpu(self, fsdp_plugin)

    __init__.__wrapped__ = _ORIGINAL_INIT
    AcceleratorState.__init__ = __init__


def uninstall() -> None:
    """Undo the patch (for the pin test)."""
    global _ORIGINAL_INIT
    from accelerate.state import AcceleratorState

    if _ORIGINAL_INIT is not None:
        AcceleratorState.__init__ = _ORIGINAL_INIT
        _ORIGINAL_INIT = None


def _select_fsdp_on_cpu(state, fsdp_plugin) -> None:
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    if fsdp_plugin is None or state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.distributed_type = DistributedType.FSDP
    if state._mixed_precision != "no":
        fsdp_plugin.set_mixed_precision(state._mixed_precision)
    state.fsdp_plugin = fsdp_plugin
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
