"""The PAVE patch: plain torch, no transformers import.

>>> from pave.patch import PatchConfig, PavePatch
>>> patch = PavePatch(PatchConfig(side_dim=1024, query_dim=1152, output_dim=896))
"""

from pave.patch import method as _registration  # noqa: F401  (registers the ``pave`` kind)
from pave.patch.config import PatchConfig
from pave.patch.patch import PatchAttention, PatchOutput, PavePatch, count_parameters

__all__ = ["PatchConfig", "PavePatch", "PatchOutput", "PatchAttention", "count_parameters"]
