"""Component table: rows/out/slots per generated leaf and the row -> leaf layout."""
import jax.numpy as jnp
import numpy as np

from hint_jax.hypernet import components
from hint_jax.peft import spec

DIMS = spec.BackboneDims(d_model=12, num_heads=3, head_dim=5, num_encoder_layers=2,
                         num_decoder_layers=3, d_ff=14)


def test_component_table():
  peft = spec.PeftConfig(adapter_size=7, prefix_length=2,
                         lora=spec.LoraConfig(rank=3, projections=("key", "out")))
  got = {c.name: (c.rows, c.out, c.transpose, c.num_slots) for c in components.components(peft, DIMS)}
  assert got == {
      "adapter_down": (7, 12, True, 5), "adapter_up": (7, 12, False, 5),
      "adapter_down_bias": (1, 7, False, 5), "adapter_up_bias": (1, 12, False, 5),
      "prefix_key": (2, 15, False, 8), "prefix_value": (2, 15, False, 8),
      "lora_key_a": (3, 12, True, 8), "lora_key_b": (3, 15, False, 8),
      "lora_out_a": (3, 15, True, 8), "lora_out_b": (3, 12, False, 8),
  }


def test_assemble_layout():
  peft = spec.PeftConfig(adapter_size=7, prefix_length=2)
  comps = {c.name: c for c in components.components(peft, DIMS)}
  generated = {n: jnp.arange(2 * c.num_queries * c.out, dtype=jnp.float32).reshape(
      2, c.num_slots, c.rows, c.out) for n, c in comps.items()}
  out = components.assemble(peft, DIMS, generated)
  down = generated["adapter_down"]
  # Encoder layer 1 is slot 1; decoder-self layer 0 is slot 2 (after the 2 encoder layers).
  np.testing.assert_array_equal(out.encoder.adapter.down[:, 1], np.swapaxes(down[:, 1], -1, -2))
  np.testing.assert_array_equal(out.decoder_self.adapter.down[:, 0],
                                np.swapaxes(down[:, 2], -1, -2))
  key = generated["prefix_key"]
  np.testing.assert_array_equal(out.decoder_cross.prefix.key[:, 2], key[:, 7].reshape(2, 2, 3, 5))
  np.testing.assert_array_equal(out.decoder_self.adapter.up_bias[:, 1],
                                generated["adapter_up_bias"][:, 3, 0])


def test_ia3_components_and_identity_offset():
  peft = spec.PeftConfig(adapter_size=None, prefix_length=None, ia3=spec.Ia3Config())
  comps = {c.name: c for c in components.components(peft, DIMS)}
  got = {n: (c.rows, c.out, c.transpose, c.num_slots) for n, c in comps.items()}
  # key/value in every attention (2 + 3 + 3 slots); mlp only beside FFNs (2 + 3).
  assert got == {"ia3_key": (1, 15, False, 8), "ia3_value": (1, 15, False, 8),
                 "ia3_mlp": (1, 14, False, 5)}
  generated = {n: jnp.arange(2 * c.num_queries * c.out, dtype=jnp.float32).reshape(
      2, c.num_slots, c.rows, c.out) for n, c in comps.items()}
  out = components.assemble(peft, DIMS, generated)
  np.testing.assert_array_equal(out.decoder_cross.ia3.key[:, 1],
                                1.0 + generated["ia3_key"][:, 6, 0])
  np.testing.assert_array_equal(out.decoder_self.ia3.mlp[:, 2], 1.0 + generated["ia3_mlp"][:, 4, 0])
  assert out.decoder_cross.ia3.mlp is None
