"""Generated-module kinds declared once (`peft.kinds`), and IA3: shapes, ops, identity, errors."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.peft import ia3, kinds, spec
from hint_jax.t5 import T5, T5Config

CONFIG = T5Config.preset("tiny", num_decoder_layers=1)  # D 12, H 3, K 5, F 14
DIMS = CONFIG.dims
IA3 = spec.PeftConfig(adapter_size=None, prefix_length=None, ia3=spec.Ia3Config())
ALL = spec.PeftConfig(adapter_size=4, prefix_length=2, lora=spec.LoraConfig(rank=2),
                      ia3=spec.Ia3Config())
B, L, T = 2, 7, 5
RNG = np.random.default_rng(0)


def _is_shape(x):
  return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def test_ia3_shapes_sites_and_axes():
  shapes = spec.task_param_shapes(IA3, DIMS, 3)
  assert shapes.encoder.ia3 == spec.Scaling(key=(3, 2, 15), value=(3, 2, 15), mlp=(3, 2, 14))
  assert shapes.decoder_self.ia3 == spec.Scaling(key=(3, 1, 15), value=(3, 1, 15), mlp=(3, 1, 14))
  assert shapes.decoder_cross.ia3 == spec.Scaling(key=(3, 1, 15), value=(3, 1, 15))  # no FFN
  assert shapes.encoder.adapter is None and shapes.encoder.lora is None
  only_mlp = dataclasses.replace(IA3, ia3=spec.Ia3Config(targets=("mlp",)))
  assert spec.task_param_shapes(only_mlp, DIMS, 1).decoder_cross.ia3 is None
  axes_tree = spec.task_param_axes(ALL, DIMS)
  shapes_tree = spec.task_param_shapes(ALL, DIMS, 1)
  # Same structure, one axis name per dimension.
  jax.tree.map(lambda s, n: len(s) == len(n) or pytest.fail(f"{s} vs {n}"), shapes_tree,
               axes_tree, is_leaf=_is_shape)
  with pytest.raises(ValueError, match="targets"):
    spec.Ia3Config(targets=("query",))
  with pytest.raises(ValueError, match="d_ff"):
    spec.task_param_shapes(IA3, dataclasses.replace(DIMS, d_ff=None), 1)


def test_unset_ia3_keeps_the_old_signature():
  assert "ia3" not in repr(spec.PeftConfig())
  assert "ia3=Ia3Config" in repr(IA3)
  assert IA3.enabled and not spec.PeftConfig(None, None).enabled


def test_unknown_kind_is_a_one_line_error(monkeypatch):
  with pytest.raises(ValueError, match="unknown generated-module kind 'bogus'"):
    kinds.get("bogus")
  site = spec.task_param_shapes(ALL, DIMS, 1).encoder
  assert [k.name for k, _ in kinds.items(site)] == ["adapter", "prefix", "lora", "ia3"]
  monkeypatch.delitem(kinds.KINDS, "ia3")  # a SiteParams field nobody declared
  with pytest.raises(ValueError, match="unknown generated-module kind 'ia3'"):
    kinds.items(site)


def test_peft_config_from_dict_round_trips_every_kind():
  d = jax.tree.map(lambda x: list(x) if isinstance(x, tuple) else x, dataclasses.asdict(ALL),
                   is_leaf=lambda x: isinstance(x, tuple))
  assert kinds.peft_config_from_dict(d) == ALL
  with pytest.raises(ValueError, match="'bogus'"):
    kinds.peft_config_from_dict({"bogus": 1})


def test_ia3_ops_match_numpy():
  y, v = RNG.standard_normal((B, L, 3, 5)), RNG.standard_normal((B, 15))
  np.testing.assert_allclose(ia3.scale_heads(jnp.asarray(y), jnp.asarray(v)),
                             y * v.reshape(B, 1, 3, 5), rtol=1e-6)
  h, w = RNG.standard_normal((B, L, 14)), RNG.standard_normal((B, 14))
  np.testing.assert_allclose(ia3.scale_hidden(jnp.asarray(h), jnp.asarray(w)), h * w[:, None],
                             rtol=1e-6)


def test_generated_ia3_starts_at_identity():
  """Generator rows of zeros give vectors of ones (the IA3 paper's initialisation)."""
  template = spec.task_param_shapes(IA3, DIMS, 1).encoder.ia3
  kind = kinds.get("ia3")
  zeros = {f: jnp.zeros(s) for f, s in kind.fields(template).items()}
  out = kind.from_generated(template, zeros)
  for field in ("key", "value", "mlp"):
    np.testing.assert_array_equal(getattr(out, field), 1.0)


@pytest.fixture(scope="module")
def t5_setup():
  model = T5(CONFIG)
  enc = jnp.asarray(RNG.integers(2, CONFIG.vocab_size, (B, L)), jnp.int32)
  dec = jnp.asarray(RNG.integers(2, CONFIG.vocab_size, (B, T)), jnp.int32)
  params = jax.tree.map(lambda s: jnp.asarray(0.3 * RNG.standard_normal(s.shape), jnp.float32),
                        nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), enc, dec))["params"])
  return model, params, enc, dec, jax.jit(model.apply)


def _task_params(peft, value=None, seed=1):
  rng = np.random.default_rng(seed)
  fill = (lambda s: jnp.full(s.shape, value, jnp.float32)) if value is not None else (
      lambda s: jnp.asarray(1.0 + 0.5 * rng.standard_normal(s.shape), jnp.float32))
  return jax.tree.map(fill, spec.task_param_structs(peft, DIMS, B))


def test_ia3_at_identity_equals_the_plain_model(t5_setup):
  _, params, enc, dec, apply = t5_setup
  plain = apply({"params": params}, enc, dec)
  np.testing.assert_array_equal(apply({"params": params}, enc, dec, _task_params(IA3, 1.0)),
                                plain)
  assert float(jnp.abs(apply({"params": params}, enc, dec, _task_params(IA3)) - plain).max()) > 1e-3


@pytest.mark.parametrize("target", ["key", "value", "mlp"])
def test_each_ia3_vector_equals_scaling_its_kernel(t5_setup, target):
  """Scaling keys/values (FFN hidden) by l equals scaling the kernel's output columns by l."""
  _, params, enc, dec, apply = t5_setup
  peft = dataclasses.replace(IA3, ia3=spec.Ia3Config(targets=(target,)))
  tp = jax.tree.map(lambda x: x[:1].repeat(B, 0), _task_params(peft))  # one task for all rows
  vectors = {site: getattr(getattr(tp, site).ia3, target)[0] for site in spec.SITES
             if getattr(tp, site).ia3 is not None}
  scaled = jax.tree.map(lambda x: x, params)
  stacks = {"encoder": ("encoder", "attention"), "decoder_self": ("decoder", "self_attention"),
            "decoder_cross": ("decoder", "encoder_decoder_attention")}
  for site, vector_NX in vectors.items():
    stack, module = stacks[site]
    for layer in range(vector_NX.shape[0]):
      p = scaled[stack][f"layers_{layer}"]
      if target == "mlp":
        # gelu(u wi_0) * (u wi_1): scaling the hidden is scaling the linear branch's kernel.
        p["mlp"]["wi_1"]["kernel"] = p["mlp"]["wi_1"]["kernel"] * vector_NX[layer]
      else:
        kernel = p[module][target]["kernel"]
        p[module][target]["kernel"] = kernel * vector_NX[layer].reshape(kernel.shape[1:])
  np.testing.assert_allclose(apply({"params": params}, enc, dec, tp),
                             apply({"params": scaled}, enc, dec), atol=2e-5, rtol=1e-5)
