"""Tests for analytic FLOPs and their agreement with XLA's cost analysis."""
import pytest

from hint_jax.evaluation import flops, flops_table, xla_flops
from hint_jax.hypernet import config as hypernet_config
from hint_jax.hypernet import sentence_encoder
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config

HYPER = hypernet_config.HypernetConfig()
# T5-small widths (so matmuls dominate, as at real sizes) but shallow, short and a small vocab.
CFG = t5_config.T5Config.preset("small", num_encoder_layers=2, num_decoder_layers=2,
                                vocab_size=2048)
LENGTHS = flops.Lengths(instruction=48, inputs=24, targets=8, concat_inputs=80)


def test_encoder_by_hand():
  cfg = t5_config.T5Config.preset("tiny")  # D 12, H*K 15, F 14, 2 layers, gated
  length, hk = 7, 15
  attn = 4 * 2 * length * 12 * hk + 2 * 2 * length * length * hk
  ffn = 3 * 2 * length * 12 * 14
  assert flops.encoder(cfg, length) == 2 * (attn + ffn)
  peft = spec.PeftConfig(adapter_size=4, prefix_length=3,
                         lora=spec.LoraConfig(rank=2, projections=("query",)))
  site = spec.task_param_shapes(peft, cfg.dims, 1).encoder
  extra = 2 * 2 * length * 3 * hk + 2 * 2 * length * 12 * 4 + 2 * length * (12 * 2 + 2 * hk)
  assert flops.encoder(cfg, length, site) == 2 * (attn + ffn + extra)


def test_amortisation():
  b = flops.Breakdown(per_task=1000, per_example_fixed=10)
  assert b.per_example(1) == 1010 and b.per_example(100) == 20
  with pytest.raises(ValueError, match=">= 1"):
    b.per_example(0)


@pytest.mark.parametrize("peft", [
    spec.PeftConfig(adapter_size=64, prefix_length=30),
    spec.PeftConfig(adapter_size=None, prefix_length=None,
                    lora=spec.LoraConfig(rank=8, projections=("query", "key", "value", "out"))),
    spec.PeftConfig(adapter_size=None, prefix_length=None, ia3=spec.Ia3Config()),
])
@pytest.mark.parametrize("cache_memory", [True, False])
def test_analytic_matches_xla_within_10_percent(peft, cache_memory):
  xla = xla_flops.hint_flops(CFG, peft, HYPER, LENGTHS, cache_memory=cache_memory)
  ana = flops.hint_flops(CFG, peft, HYPER, LENGTHS, cache_memory=cache_memory)
  assert xla.per_task == pytest.approx(ana.per_task, rel=0.1)
  assert xla.per_example_fixed == pytest.approx(ana.per_example_fixed, rel=0.1)


def test_bert_instruction_encoder_analytic_matches_xla_within_10_percent():
  bert = sentence_encoder.BertConfig(vocab_size=512, max_positions=64)  # MiniLM-L6 widths
  peft = spec.PeftConfig(adapter_size=64, prefix_length=30)
  xla = xla_flops.hint_flops(CFG, peft, HYPER, LENGTHS, bert=bert)
  ana = flops.hint_flops(CFG, peft, HYPER, LENGTHS, bert=bert)
  assert xla.per_task == pytest.approx(ana.per_task, rel=0.1)
  assert xla.per_example_fixed == pytest.approx(ana.per_example_fixed, rel=0.1)
  shared = flops.hint_flops(CFG, peft, HYPER, LENGTHS)
  assert ana.per_example_fixed == shared.per_example_fixed  # only the per-task part changes
  assert ana.per_task - shared.per_task == (flops.bert_encoder(bert, CFG.d_model, 48)
                                            - flops.encoder(CFG, 48))


def test_cached_memory_moves_the_instruction_projection_to_the_task():
  peft = spec.PeftConfig(adapter_size=8, prefix_length=4,
                         lora=spec.LoraConfig(rank=2, projections=("key", "value")))
  cached = flops.hint_flops(CFG, peft, HYPER, LENGTHS, cache_memory=True)
  fused = flops.hint_flops(CFG, peft, HYPER, LENGTHS, cache_memory=False)
  moved = flops.memory_projection(CFG, peft, LENGTHS.instruction)
  hk, r = CFG.num_heads * CFG.head_dim, 2
  by_hand = CFG.num_decoder_layers * 2 * (2 * 48 * CFG.d_model * hk + 2 * 48 * r * (CFG.d_model + hk))
  assert moved == by_hand
  assert cached.per_task == fused.per_task + moved
  assert cached.per_example_fixed == fused.per_example_fixed - moved
  no_fusion = flops.hint_flops(CFG, peft, HYPER, LENGTHS, fusion=False)
  assert no_fusion.per_task == fused.per_task


def test_concat_analytic_matches_xla_within_10_percent():
  xla = xla_flops.concat_flops(CFG, LENGTHS)
  assert xla.per_example_fixed == pytest.approx(
      flops.concat_flops(CFG, LENGTHS).per_example_fixed, rel=0.1)


@pytest.mark.parametrize("preset", flops.PRESETS)
def test_hint_cheaper_per_example_at_def2pos(preset):
  cfg = t5_config.T5Config.preset(preset)
  lengths = flops.SNI_LENGTHS["def2pos"]
  hint = flops.hint_flops(cfg, flops_table.published_peft(preset), HYPER, lengths)
  concat = flops.concat_flops(cfg, lengths)
  assert hint.per_example(100) < concat.per_example(100)


def test_table_lists_every_preset_and_format():
  rows = flops_table.build_rows(xla_presets=())
  assert len(rows) == len(flops.PRESETS) * 2 * 2
  md = flops_table.to_markdown(rows)
  for preset in flops.PRESETS:
    assert f"| {preset} | def2pos | hint |" in md


def test_ia3_flops_by_hand():
  """IA3 adds one multiply per scaled element: keys and values of every attention (the
  instruction's included, paid once per task when it is cached) and the FFN hidden."""
  peft = spec.PeftConfig(adapter_size=None, prefix_length=None, ia3=spec.Ia3Config())
  none = spec.PeftConfig(adapter_size=None, prefix_length=None, lora=spec.LoraConfig())
  hk, f, n = CFG.num_heads * CFG.head_dim, CFG.d_ff, CFG.num_decoder_layers
  site = spec.task_param_shapes(peft, CFG.dims, 1).encoder
  assert flops.encoder(CFG, 7, site) - flops.encoder(CFG, 7) == CFG.num_encoder_layers * 7 * (
      2 * hk + f)
  assert flops.memory_projection(CFG, peft, 48) - flops.memory_projection(CFG, none, 0) == (
      n * 2 * 48 * (CFG.d_model * hk * 2 + hk))
