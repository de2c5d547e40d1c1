"""Whether the Hugging Face Hub can be reached, answered in at most a few seconds.

The hub client retries for ~23 s before failing when there is no network; tune asks first, so
that a model or dataset that cannot be fetched is refused at once with a one-line fix.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def hub_unreachable() -> bool:
    """True when HF_HUB_OFFLINE is set or the hub's host does not accept a connection within 3 s."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=3):
            return False
    except OSError:
        return True
