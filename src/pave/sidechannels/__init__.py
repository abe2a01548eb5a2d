"""Side channels: signal -> side tokens for the patch, and the feature store they are cached in.

>>> from pave.sidechannels import get_encoder, FeatureStore
>>> encoder = get_encoder("audio")                     # built-in log-mel features, no weights
>>> channel = encoder.encode("clip.mp4")               # SideChannel: tokens (T_s, 1, 1, 256)
>>> store = FeatureStore("features/audio"); store.put("clip", channel); store.flush()
"""

from pave.sidechannels.base import KINDS, SideChannel, SideChannelEncoder, backends, get_encoder
from pave.sidechannels.store import FeatureStore

__all__ = ["KINDS", "SideChannel", "SideChannelEncoder", "FeatureStore", "backends", "get_encoder"]
