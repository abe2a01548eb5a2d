"""The method registry: every way of adapting a base model that the project trains, counts and
compares, in one table that training, FLOPs accounting, cost reports, the quickstart and the
command line all read.

Two levels, as in peft (a tuner type and the configs that set it up):

- a **kind** (:class:`Kind`) is a module a patch directory can hold: its config class, its module
  class, the config fields it takes from the base model and from a side channel, whether it reads
  one, and its FLOPs;
- a **method** (:class:`Method`) is what a recipe's ``patch.method``, ``pave flops --method`` and
  the quickstart's ``--methods`` name: a kind (or none, for the base alone and LoRA-only
  fine-tuning), the config settings that make it that method (``pave-learnable`` is the ``pave``
  kind with learnable queries), whether LoRA trains with it, its label in tables, and the sizes
  it takes on the quickstart's tiny base.

Each kind registers itself, with its methods, where it lives: :mod:`pave.patch` registers
``pave``, every folder of :mod:`pave.adapters` its adapter. Adding a method is one folder with its
config, its module and one :func:`register` call. The registry itself is plain Python, so
importing it costs nothing; lookups import the built-in kinds on first use.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: What a kind needs of a side channel.
SIDE_NEEDS = ("required", "optional", "none")
# Modules whose import registers the built-in kinds and methods.
_BUILTIN_MODULES = ("pave.patch", "pave.adapters")


@dataclass(frozen=True)
class VisualLayout:
    """The visual tokens a base model sends to its LLM for one video.

    Attributes:
        frames: T, key frames.
        grid: (h, w) visual tokens per frame, the grid a patch updates.
        feature_dim: C_q, width of the vision features before the projector (a patch's queries).
        width: C_v, width of the visual tokens (the LLM hidden size).
        extra_per_frame: tokens per frame outside the grid (Video-LLaVA's CLS token).
    """

    frames: int
    grid: tuple[int, int]
    feature_dim: int
    width: int
    extra_per_frame: int = 0

    @property
    def grid_tokens(self) -> int:
        """T * h * w: the tokens a patch updates (its queries)."""
        return self.frames * self.grid[0] * self.grid[1]

    @property
    def llm_tokens(self) -> int:
        return self.frames * (self.grid[0] * self.grid[1] + self.extra_per_frame)


@dataclass(frozen=True)
class SideLayout:
    """Side-channel tokens of one sample: ``frames`` (T_s) of ``grid`` (s_h, s_w) tokens, ``dim`` wide."""

    frames: int
    grid: tuple[int, int]
    dim: int

    @classmethod
    def of(cls, tokens) -> SideLayout:
        """The layout of one sample's side tokens, a (T_s, s_h, s_w, C_s) tensor."""
        frames, rows, cols, dim = tokens.shape
        return cls(frames=frames, grid=(rows, cols), dim=dim)

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.frames * self.tokens_per_frame


# size(visual, side, settings) -> config fields; flops(config, visual, side) -> FLOPs of one sample.
SizeRule = Callable[[VisualLayout, "SideLayout | None", Mapping[str, Any]], dict[str, Any]]
FlopsRule = Callable[[Any, VisualLayout, "SideLayout | None"], int]


@dataclass(frozen=True)
class Kind:
    """A module type a patch directory can hold.

    Attributes:
        name: recorded in ``patch_config.json`` as ``kind``; lower case letters, digits, ``-``, ``_``.
        config_cls: its config dataclass (with ``to_dict`` and ``from_dict(data, source)``).
        module_cls: its ``nn.Module``, built from a config.
        size: the config fields it takes from the base's visual layout and, when it reads one, the
            side channel's layout, given the settings the caller chose (they override the result).
        side: whether it reads a side channel: ``"required"``, ``"optional"`` or ``"none"``.
        flops: FLOPs of one sample's forward pass; None counts the module's matrix products
            with ``FlopCounterMode`` on the meta device (:func:`measured_flops`).
    """

    name: str
    config_cls: type
    module_cls: type
    size: SizeRule
    side: str = "optional"
    flops: FlopsRule | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.islower() or c.isdigit() or c in "-_" for c in self.name):
            raise ValueError(f"kind name {self.name!r} must be lower case letters, digits, '-' or '_'")
        if self.side not in SIDE_NEEDS:
            raise ValueError(f"kind {self.name!r}: side must be one of {SIDE_NEEDS}, got {self.side!r}")

    def configure(self, visual: VisualLayout, side: SideLayout | None = None, **settings) -> Any:
        """A config sized for a base (and side channel); ``settings`` set or override fields."""
        return self.config_cls(**(self.size(visual, side, settings) | settings))

    def count_flops(self, config, visual: VisualLayout, side: SideLayout | None) -> int:
        rule = self.flops or (lambda c, v, s: measured_flops(self.module_cls, c, v, s))
        return rule(config, visual, side)


@dataclass(frozen=True)
class Method:
    """One way of adapting a base, as recipes, ``pave flops`` and the quickstart name it.

    Attributes:
        name: ``patch.method`` in a recipe.
        label: its row label in tables.
        kind: the kind it adds (None: nothing beyond LoRA, or the base alone).
        lora: whether LoRA is trained with it (False only for the frozen base).
        settings: config fields that make it this method (applied before a recipe's own).
        tiny: config fields for the quickstart's tiny base (its widths are far below the paper's).
        aliases: other names it answers to.
    """

    name: str
    label: str
    kind: str | None = None
    lora: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def trains(self) -> bool:
        """Whether anything is trained (False for the base model alone)."""
        return self.lora or self.kind is not None

    @property
    def side(self) -> str:
        """What it needs of a side channel (see :data:`SIDE_NEEDS`)."""
        return "none" if self.kind is None else get_kind(self.kind).side


_KINDS: dict[str, Kind] = {}
_METHODS: dict[str, Method] = {}
_builtins_loaded = False


def register(kind: Kind | None, *methods: Method) -> None:
    """Register a kind and the methods that use it (``kind=None``: methods without a module)."""
    if kind is not None:
        if kind.name in _KINDS:
            raise ValueError(f"kind {kind.name!r} is already registered")
        _KINDS[kind.name] = kind
    for method in methods:
        expected = None if kind is None else kind.name
        if method.kind != expected:
            raise ValueError(f"method {method.name!r} uses kind {method.kind!r}, registered with {expected!r}")
        taken = {n for m in _METHODS.values() for n in (m.name, *m.aliases)}
        clash = sorted(taken & {method.name, *method.aliases})
        if clash:
            raise ValueError(f"method name(s) {clash} are already registered")
        _METHODS[method.name] = method


def unregister(name: str) -> None:
    """Remove a kind and its methods (for tests and notebooks that register their own)."""
    _KINDS.pop(name, None)
    for method in [m for m in _METHODS.values() if m.kind == name]:
        del _METHODS[method.name]


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def methods() -> list[Method]:
    """Every registered method, in registration order."""
    _load_builtins()
    return list(_METHODS.values())


def get_method(name: str) -> Method:
    """The method called ``name`` (or one of its aliases)."""
    for method in methods():
        if name == method.name or name in method.aliases:
            return method
    raise ValueError(f"unknown method {name!r}; registered: {', '.join(m.name for m in methods())}")


def kinds() -> dict[str, Kind]:
    """Every registered kind, by name."""
    _load_builtins()
    return dict(_KINDS)


def get_kind(name: str) -> Kind:
    known = kinds()
    if name not in known:
        raise ValueError(f"unknown patch kind {name!r}; registered: {', '.join(sorted(known))}")
    return known[name]


def kind_of(obj) -> Kind:
    """The registered kind whose config or module class ``obj`` is an instance of."""
    for kind in kinds().values():
        if type(obj) in (kind.config_cls, kind.module_cls):
            return kind
    raise ValueError(f"{type(obj).__name__} is neither the config nor the module of a registered kind")


def method_for(config, lora: bool) -> Method:
    """The method that trains a module of ``config`` (None: no module) with or without LoRA:
    the one of its kind whose settings it matches, the most specific first."""
    kind = None if config is None else kind_of(config).name
    candidates = [m for m in methods() if m.kind == kind and (kind is not None or m.lora == lora)]
    values = {} if config is None else dataclasses.asdict(config)
    matching = [m for m in candidates if all(values.get(k) == v for k, v in m.settings.items())]
    if not matching:
        raise ValueError(f"no registered method matches a {kind or 'base'} model (LoRA: {lora})")
    return max(matching, key=lambda m: len(m.settings))


def measured_flops(module_cls: type, config, visual: VisualLayout, side: SideLayout | None) -> int:
    """Matrix-product FLOPs of one forward pass of an adapter built from ``config``, counted by
    ``FlopCounterMode`` on the meta device (no weights, no compute; norms and softmax not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        module = module_cls(config).requires_grad_(False)
        tokens = torch.zeros(1, visual.frames, *visual.grid, visual.width)
        inputs = {"query_features": torch.zeros(1, visual.frames, *visual.grid, visual.feature_dim)}
        if side is not None:
            inputs["side"] = torch.zeros(1, side.frames, *side.grid, side.dim)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(tokens, **inputs)
    return counter.get_total_flops()


def base_fields(config_cls: type, visual: VisualLayout) -> dict[str, Any]:
    """The fields among the LLM width (``output_dim``) and the vision-feature width
    (``query_dim``) that ``config_cls`` has, from the base's layout: the usual adapter sizing."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    fields = {"output_dim": visual.width, "query_dim": visual.feature_dim}
    return {k: v for k, v in fields.items() if k in known}


register(
    None,
    Method("base", "Zero-shot", lora=False, aliases=("zero-shot",)),
    Method("ft", "FT"),
)
