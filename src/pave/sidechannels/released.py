"""The authors' pre-extracted side-channel features, read into the feature store as they are.

``pave extract KIND --backend released --inputs FOLDER --out STORE`` takes their per-item
``.pt`` files (read with ``torch.load(weights_only=True)``; each holds one tensor) and stores
them in the token layout their released patches were trained on, so a converted patch
(``pave convert``) evaluates without re-extracting anything:

========  ==========================================  =============================  =========================
kind      their file                                  their tensor                   stored tokens
========  ==========================================  =============================  =========================
audio     ``<video id>.pt`` (ImageBind-Huge)          (K, 1024), one per 2 s window  (K, 1, 1, 1024), window
                                                      at a 1 s stride                centres 1, 2, ... s
video     ``<video id>.pt`` (LanguageBind, 2 fps)     (T, 5, 1024): CLS, then 2x2    (T, 2, 2, 1024), CLS
                                                                                     dropped; at 0, 0.5, ... s
3d        ``<scene>/video_features.pt`` (LLaVA-3D)    (1, 18432, 1024)               (32, 24, 24, 1024)
exo       ``<take>/.../448/<camera>.pt`` (SigLIP)     (32, 196, 1152) per view       (32 V, 14, 14, 1152),
                                                                                     time-major, view fastest
========  ==========================================  =============================  =========================

3D and exo frames are the 32 key frames, stamped with their index. Exo views are stacked in the
order of their file names (the authors' loader takes the folder's listing order, which the file
system decides). Item ids follow the rule of media extraction, so training and ``pave eval``
find them: the file's path under ``--inputs`` without ``.pt`` (the scene folder for 3D; for exo
the take folder and its views, as :func:`~pave.sidechannels.extract.item_id` names them).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from pave.data.media import MediaError
from pave.sidechannels.base import SideChannel, SideChannelEncoder, register

SUFFIX = ".pt"
#: Kind -> (encoder name recorded with the features, token width).
RELEASED = {
    "audio": ("imagebind-huge", 1024),
    "video": ("languagebind-video", 1024),
    "3d": ("llava3d", 1024),
    "exo": ("released-siglip", 1152),
}
SCENE_FILE = "video_features.pt"
_3D_FRAMES, _3D_GRID = 32, (24, 24)


def load_tensor(path: Path) -> torch.Tensor:
    """The one tensor an authors' feature file holds."""
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure: name the file
        raise MediaError(f"{path}: not a weights-only torch file ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, torch.Tensor):
        raise MediaError(f"{path}: expected one tensor, got {type(value).__name__}")
    return value.float()


def _expect(path: Path, tensor: torch.Tensor, shape: str, ok: bool) -> None:
    if not ok:
        raise MediaError(f"{path}: expected a tensor shaped {shape}, got {tuple(tensor.shape)}")


class ReleasedFeatures(SideChannelEncoder):
    """Reads one item of the authors' features (a ``.pt`` file; for exo, a folder of them)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name, self._dim = RELEASED[kind]

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, item: str | Path | list[str | Path]) -> SideChannel:
        path = Path(item[0] if isinstance(item, list) else item)
        width = self._dim
        if self.kind == "exo":
            views = sorted(path.glob(f"*{SUFFIX}")) if path.is_dir() else [path]
            if not views:
                raise MediaError(f"{path}: no {SUFFIX} view features in the folder")
            tensors = [load_tensor(v) for v in views]
            for view, t in zip(views, tensors, strict=True):
                _expect(view, t, f"(T, 196, {width})", t.dim() == 3 and t.shape[1:] == (196, width))
            if len({t.shape[0] for t in tensors}) != 1:
                raise MediaError(f"{path}: the views have different frame counts {[t.shape[0] for t in tensors]}")
            stacked = torch.stack(tensors, dim=1)  # (T, V, 196, C): time-major, view fastest
            frames, count = stacked.shape[:2]
            tokens = stacked.reshape(frames * count, 14, 14, width)
            times = torch.arange(frames, dtype=torch.float32).repeat_interleave(count)
            return SideChannel(tokens, times, self.kind, self.name)
        tensor = load_tensor(path)
        if self.kind == "audio":
            _expect(path, tensor, f"(K, {width})", tensor.dim() == 2 and tensor.shape[1] == width)
            tokens, times = tensor[:, None, None, :], torch.arange(tensor.shape[0], dtype=torch.float32) + 1.0
        elif self.kind == "video":
            _expect(path, tensor, f"(T, 5, {width}): CLS then 2x2", tensor.dim() == 3 and tensor.shape[1:] == (5, width))
            tokens, times = tensor[:, 1:].reshape(-1, 2, 2, width), torch.arange(tensor.shape[0], dtype=torch.float32) / 2
        else:
            cells = _3D_FRAMES * _3D_GRID[0] * _3D_GRID[1]
            _expect(path, tensor, f"(1, {cells}, {width})", tensor.numel() == cells * width and tensor.shape[-1] == width)
            tokens, times = tensor.reshape(_3D_FRAMES, *_3D_GRID, width), torch.arange(_3D_FRAMES, dtype=torch.float32)
        return SideChannel(tokens.contiguous(), times, self.kind, self.name)


for _kind in RELEASED:
    register(_kind, "released")(functools.partial(ReleasedFeatures, _kind))
