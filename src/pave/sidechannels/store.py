"""Feature store: extracted side channels on disk, one safetensors file per item.

Layout::

    STORE/
      index.json                      {"format", "version", "kind", "encoder", "dim",
                                       "items": {item_id: {"file", "frames", "grid", "source"}}}
      items/<name>-<hash>.safetensors tensor "tokens" (T_s, s_h, s_w, C) float32; header metadata
                                      "pave" = JSON {"id", "kind", "encoder", "timestamps",
                                      "grid", "source"}

Every file is written to a temporary name and moved into place with ``os.replace``, so a reader
or a killed writer never sees half a file. The item files are the truth: ``index.json`` is a
summary rewritten by :meth:`FeatureStore.flush`, and opening a store adds any item file the
index misses (say, after a run was killed between flushes). No pickle is involved anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from pathlib import Path

import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pave.files import TMP_PREFIX, read_utf8, remove_stale, write_atomic, write_text
from pave.sidechannels.base import SideChannel

logger = logging.getLogger(__name__)

FORMAT, VERSION = "pave-feature-store", 1
INDEX, ITEMS = "index.json", "items"


def item_file_name(item_id: str) -> str:
    """A file name for an item id: readable, filesystem-safe, and unique (ids ``a/b`` and ``a_b``
    differ in their hash)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id)[-80:].lstrip(".")
    return f"{readable}-{hashlib.sha1(item_id.encode()).hexdigest()[:12]}.safetensors"


def read_item(path: str | Path) -> SideChannel:
    """One item file of a store (``items/<name>.safetensors``), wherever it now lies."""
    path = Path(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("pave", "null"))
            tokens = f.get_tensor("tokens") if meta else None
    except (OSError, json.JSONDecodeError, safetensors.SafetensorError) as exc:
        raise ValueError(f"{path}: not a readable feature-store item ({exc})") from exc
    if not meta:
        raise ValueError(f"{path}: not a feature-store item (no 'pave' metadata; written by `pave extract`?)")
    try:
        timestamps = torch.tensor(meta["timestamps"], dtype=torch.float32)
        return SideChannel(tokens, timestamps, meta["kind"], meta["encoder"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid feature-store item ({exc})") from None


class FeatureStore:
    """Read and write extracted side channels.

    >>> store = FeatureStore("features/avsd-audio")
    >>> channel = store.get("Q7ZK1")            # SideChannel
    >>> "Q7ZK1" in store, len(store.ids())
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.spec: dict = {}
        self._items: dict[str, dict] = {}
        index = self.path / INDEX
        if index.is_file():
            try:
                data = json.loads(read_utf8(index))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{index}: not valid JSON ({exc}); delete it to rebuild it from the item files") from None
            if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("items"), dict):
                raise ValueError(f"{index}: not a PAVE feature store index")
            self.spec = {k: data[k] for k in ("kind", "encoder", "dim") if k in data}
            self._items = data["items"]
        self._reconcile()

    @classmethod
    def existing(cls, path: str | Path, what: str = "feature store") -> FeatureStore:
        """A store to read from: a folder that does not exist is an error, not an empty store."""
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{what}: {path}: no such folder (extract it first with `pave extract`)")
        return cls(path)

    def _reconcile(self) -> None:
        """Drop index entries whose file is gone; add item files the index misses."""
        items_dir = self.path / ITEMS
        on_disk = {p.name for p in items_dir.glob("*.safetensors") if not p.name.startswith(TMP_PREFIX)}
        for item_id in [i for i, e in self._items.items() if Path(e["file"]).name not in on_disk]:
            logger.warning("%s: item %r is indexed but its file is missing; dropped", self.path, item_id)
            del self._items[item_id]
        known = {Path(e["file"]).name for e in self._items.values()}
        for name in sorted(on_disk - known):
            with safe_open(items_dir / name, framework="pt") as f:
                meta = json.loads(f.metadata()["pave"])
                frames = f.get_slice("tokens").get_shape()[0]
            self._add(meta, name, frames)

    def _check(self, meta: dict) -> dict:
        spec = {"kind": meta["kind"], "encoder": meta["encoder"], "dim": meta["dim"]}
        if self.spec and self.spec != spec:
            raise ValueError(f"{self.path}: holds {self.spec}, cannot add an item encoded as {spec}")
        return spec

    def _add(self, meta: dict, name: str, frames: int) -> None:
        self.spec = self._check(meta)
        self._items[meta["id"]] = {
            "file": f"{ITEMS}/{name}",
            "frames": frames,
            "grid": meta["grid"],
            "source": meta["source"],
        }

    def ids(self) -> list[str]:
        """Item ids in sorted order."""
        return sorted(self._items)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def source(self, item_id: str) -> str | None:
        """The media file or folder an item was extracted from."""
        return self._items[item_id]["source"]

    def get(self, item_id: str) -> SideChannel:
        if item_id not in self._items:
            raise KeyError(f"{self.path}: no features for item {item_id!r}")
        return read_item(self.path / self._items[item_id]["file"])

    def put(self, item_id: str, channel: SideChannel, source: str | None = None) -> None:
        """Write one item atomically (replacing an earlier version). Thread-safe. The index file
        is updated by :meth:`flush`."""
        meta = {
            "id": item_id,
            "kind": channel.kind,
            "encoder": channel.encoder,
            "dim": channel.dim,
            "timestamps": channel.timestamps.tolist(),
            "grid": list(channel.grid),
            "source": source,
        }
        (self.path / ITEMS).mkdir(parents=True, exist_ok=True)
        name = item_file_name(item_id)
        with self._lock:
            self._check(meta)  # before writing anything
        tokens = channel.tokens.detach().to("cpu", torch.float32).contiguous()
        write_atomic(
            self.path / ITEMS / name,
            lambda tmp: save_file({"tokens": tokens}, tmp, metadata={"pave": json.dumps(meta)}),
        )
        with self._lock:
            self._add(meta, name, tokens.shape[0])

    def flush(self) -> None:
        """Rewrite ``index.json`` atomically from the items written so far."""
        with self._lock:
            data = {
                "format": FORMAT,
                "version": VERSION,
                **self.spec,
                "items": dict(sorted(self._items.items())),
            }
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.path / INDEX, json.dumps(data, indent=1) + "\n")

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files left by a killed writer; call only when no other writer runs."""
        return remove_stale(self.path, self.path / ITEMS)
