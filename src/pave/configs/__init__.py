"""Configs of the real base models, bundled so FLOPs accounting and the real-layout test models
need no download. A sub-config given as a file name is read from this folder too."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def bundled_config(name: str) -> dict[str, Any]:
    """The JSON file ``name`` of this folder as a dict, sub-configs inlined."""
    data = json.loads((resources.files(__name__) / name).read_text())
    for key in ("text_config", "vision_config"):
        if isinstance(data.get(key), str):
            data[key] = bundled_config(data[key])
    return data
