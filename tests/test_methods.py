"""The method registry: lookups, refusals, and a new adapter that only registers itself and is
then trained, saved, loaded, counted and listed by code that never names it."""

import dataclasses
import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from pave import methods as registry
from pave import recipes
from pave.adapters import AdapterConfig, AdapterOutput, TokenAdapter
from pave.cli import main
from pave.evaluation.cost import model_accounting
from pave.flops import account
from pave.methods import Kind, Method, SideLayout, base_fields, get_method, method_for, register
from pave.models.patched import PatchedModel
from pave.patch import PatchConfig
from pave.recipes import load_recipe
from pave.sidechannels.store import FeatureStore
from pave.training.train import train


# ----------------------------------------------------------------- a toy adapter, as a new folder would hold it
@dataclass
class GateConfig(AdapterConfig):
    """A learned gate on the visual tokens plus ``summary_tokens`` extra tokens from the side channel."""

    output_dim: int = 896
    side_dim: int | None = None
    summary_tokens: int = 2


class GateAdapter(TokenAdapter):
    """tokens (B, T, h, w, C_v) * (1 + gate); extra (B, summary_tokens, C_v) from the mean side token."""

    def __init__(self, config: GateConfig) -> None:
        super().__init__()
        self.config = config
        self.gate = nn.Parameter(torch.zeros(config.output_dim))
        self.summary = nn.Linear(config.side_dim, config.summary_tokens * config.output_dim)

    def forward(self, tokens, *, query_features=None, side=None, side_mask=None) -> AdapterOutput:
        summary = self.summary(side.flatten(1, 3).mean(dim=1).to(self.gate.dtype))  # (B, N_x * C_v)
        extra = summary.view(tokens.shape[0], self.config.summary_tokens, -1).to(tokens.dtype)
        return AdapterOutput(tokens=tokens * (1 + self.gate).to(tokens.dtype), extra=extra)

    def layout(self, layout):
        return dataclasses.replace(layout, extra=layout.extra + self.config.summary_tokens)


def _size(visual, side, settings) -> dict:
    return base_fields(GateConfig, visual) | {"side_dim": side.dim}


@pytest.fixture
def gate():
    register(Kind("gate", GateConfig, GateAdapter, size=_size, side="required"), Method("gate", "Gate (toy)", kind="gate"))
    yield get_method("gate")
    registry.unregister("gate")


def test_a_registered_adapter_trains_saves_loads_and_is_counted(gate, tiny_model_dir, synthetic_bench, tmp_path, capsys):
    out = tmp_path / "gate"
    recipe = load_recipe(
        recipes.find("tiny_audio"),
        [
            f"model.base={tiny_model_dir}",
            f"data.annotations=[{synthetic_bench['train']}]",
            f"data.media_root={synthetic_bench['root']}",
            f"data.features={{audio: {synthetic_bench['audio']}}}",
            f"train.output_dir={out}",
            "train.max_steps=2",
            "patch.method=gate",
            "patch.config={summary_tokens: 3}",
        ],
    )
    train(recipe)
    record = json.loads((out / "patch_config.json").read_text())
    assert record["kind"] == "gate" and record["config"]["summary_tokens"] == 3
    model = PatchedModel.from_pretrained(out)
    adapter = model.patches["audio"]
    assert isinstance(adapter, GateAdapter) and adapter.gate.abs().sum() > 0  # trained, saved, loaded
    assert model.method is gate and model.side_channels == ["audio"]
    assert model.token_layout().extra == 3

    # Cost of the live model: the LLM reads 3 more tokens than with FT; FLOPs come from the meta counter.
    store = FeatureStore(synthetic_bench["audio"])
    item = {"side": {"audio": store.get(store.ids()[0])}}  # as a dataset item holds it
    cost = model_accounting(model, 4, item)
    ft = account(model.config, "ft", frames=4)
    side = SideLayout.of(item["side"]["audio"].tokens)
    assert cost.method == "gate" and cost.llm_tokens == ft.llm_tokens + 3
    width = model.config.text_config.hidden_size
    assert cost.flops_patch == 2 * side.dim * 3 * width  # the summary Linear on one mean token

    capsys.readouterr()  # drop the trainer's log lines
    assert main(["methods", "--json"]) == 0
    listed = {row["method"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["gate"]["kind"] == "gate" and listed["gate"]["side channel"] == "required"


# ----------------------------------------------------------------- lookups and refusals
def test_aliases_and_unknown_names():
    assert get_method("zero-shot") is get_method("base")
    with pytest.raises(ValueError, match="unknown method 'lora'; registered: base, ft, pave"):
        get_method("lora")


def test_method_of_a_config_is_the_most_specific_match():
    vision = PatchConfig(side_dim=8, query_dim=8, output_dim=8, hidden_dim=16, num_heads=2, ffn_dim=8, output_mlp_dim=8)
    learnable = dataclasses.replace(vision, query_source="learnable", query_grid=(2, 2))
    assert method_for(vision, lora=True).name == "pave"
    assert method_for(learnable, lora=True).name == "pave-learnable"
    assert method_for(None, lora=True).name == "ft" and method_for(None, lora=False).name == "base"


def test_registration_refuses_clashes_and_bad_names(gate):
    with pytest.raises(ValueError, match="already registered"):
        register(Kind("gate", GateConfig, GateAdapter, size=_size))
    with pytest.raises(ValueError, match=r"\['zero-shot'\] are already registered"):
        register(None, Method("other", "Other", aliases=("zero-shot",)))
    with pytest.raises(ValueError, match="uses kind 'gate', registered with None"):
        register(None, Method("gate2", "Gate 2", kind="gate"))
    with pytest.raises(ValueError, match="lower case"):
        Kind("Gate", GateConfig, GateAdapter, size=_size)
    with pytest.raises(ValueError, match="side must be one of"):
        Kind("gate3", GateConfig, GateAdapter, size=_size, side="sometimes")


def test_training_the_base_alone_is_refused(tiny_model_dir):
    from pave.training.train import build_model

    recipe = load_recipe(recipes.find("tiny_audio"), [f"model.base={tiny_model_dir}", "patch.method=zero-shot"])
    with pytest.raises(ValueError, match="the base model alone: there is nothing to train"):
        build_model(recipe)
