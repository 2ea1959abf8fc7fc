"""The code in README.md and docs/quickstart.md runs as written (only paths are substituted)."""
import json
import pathlib
import re
import shlex
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax import t5
from hint_jax.models import hint

REPO = pathlib.Path(__file__).resolve().parents[2]


def code_block(markdown: pathlib.Path, heading: str, language: str = "python") -> str:
  """The first ```language block after the line `heading` (before the next heading)."""
  text = markdown.read_text(encoding="utf-8")
  start = text.index(f"\n{heading}\n")
  section = re.split(r"\n#{2,4} ", text[start + len(heading) + 2:])[0]
  match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
  assert match, f"no ```{language} block under {heading!r} in {markdown}"
  return match.group(1)


def substitute(code: str, paths: dict[str, str]) -> str:
  for placeholder, path in paths.items():
    assert f'"{placeholder}"' in code, placeholder
    code = code.replace(f'"{placeholder}"', repr(path))
  return code


def test_readme_api_tour_runs(tmp_path):
  code = code_block(REPO / "README.md", "## A short API tour")
  # A tiny T5 in Hugging Face format stands in for the downloaded t5-v1_1-base.
  cfg = t5.T5Config.preset("tiny")
  tokens = np.ones((1, 4), np.int32)
  params = nn.unbox(t5.T5(cfg).init(jax.random.PRNGKey(1), tokens, tokens)["params"])
  t5.save_hf_t5(cfg, jax.tree.map(np.asarray, params), tmp_path / "t5")
  scope = {}
  exec(compile(substitute(code, {"path/to/t5-v1_1-base": str(tmp_path / "t5"),  # noqa: S102
                                 "/tmp/exported": str(tmp_path / "exported")}),
               "README.md", "exec"), scope)
  assert (tmp_path / "exported" / "model.safetensors").exists()
  assert scope["logits"].shape == (2, 3, cfg.vocab_size)
  assert scope["tokens"].shape == (2, 8)
  assert np.all(np.isfinite(np.asarray(scope["logits"])))


def _shell_command(block: str) -> list[str]:
  """The one command of a ```bash block as argv (line continuations joined, quotes removed)."""
  lines = [line for line in block.replace("\\\n", " ").splitlines()
           if line.strip() and not line.lstrip().startswith("#")]
  assert len(lines) == 1, lines
  return shlex.split(lines[0])


@pytest.mark.slow
def test_quickstart_peft_export_recipe_runs_and_gives_our_outputs(tmp_path):
  import torch  # the `convert` extra
  doc = REPO / "docs" / "quickstart.md"
  heading = "## 5. Export to Hugging Face: backbone + one instruction's LoRA as a PEFT adapter"
  argv = _shell_command(code_block(doc, heading, "bash"))
  assert argv[0] == ".venv/bin/hint-jax" and argv[-1] == "--gin.MODEL_DIR='/tmp/hint_lora'"
  model_dir = tmp_path / "hint_lora"
  argv = [sys.executable, "-m", "hint_jax", *argv[1:-1], f"--gin.MODEL_DIR='{model_dir}'",
          "--gin.TRAIN_STEPS=2", "--gin.optim.OptimConfig.warmup_steps=0"]  # a few steps
  proc = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=REPO, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]

  code = code_block(doc, heading)
  scope = {}
  exec(compile(substitute(code, {"/tmp/hint_lora": str(model_dir),  # noqa: S102
                                 "/tmp/hint_lora_hf/backbone": str(tmp_path / "hf" / "backbone"),
                                 "/tmp/hint_lora_hf/reverse": str(tmp_path / "hf" / "reverse")}),
               "quickstart.md", "exec"), scope)
  assert scope["theirs"] == scope["ours"]
  p, model = scope["p"], scope["model"]
  assert not p.model.config.fusion and p.model.config.peft.lora is not None
  base = model.get_base_model()
  assert not torch.equal(base.lm_head.weight, base.shared.weight)  # loaded untied, as exported
  config = json.loads((tmp_path / "hf" / "backbone" / "config.json").read_text())
  assert config["tie_word_embeddings"] is False

  # Logits of the PEFT model equal ours for the adapted backbone (teacher forcing).
  enc = np.array([p.vocab.encode("cat dog egg") + [1], p.vocab.encode("sun") + [1, 0, 0]],
                 np.int32)
  dec = np.array([[0, 5, 9, 11], [0, 7, 1, 0]], np.int32)
  encoding = hint.TaskEncoding(p.adapt(scope["instruction"]), None, None)
  ours = p.model.apply(p.params, encoding, jnp.asarray(enc), jnp.asarray(dec),
                       jnp.zeros((2,), jnp.int32))
  with torch.no_grad():
    theirs = model(input_ids=torch.tensor(enc, dtype=torch.long),
                   attention_mask=torch.tensor(enc > 0, dtype=torch.long),
                   decoder_input_ids=torch.tensor(dec, dtype=torch.long)).logits.numpy()
    with model.disable_adapter():
      plain = model(input_ids=torch.tensor(enc, dtype=torch.long),
                    attention_mask=torch.tensor(enc > 0, dtype=torch.long),
                    decoder_input_ids=torch.tensor(dec, dtype=torch.long)).logits.numpy()
  scale = max(1.0, float(np.abs(theirs).max()))
  assert np.max(np.abs(np.asarray(ours) - theirs)) < 1e-4 * scale
  assert np.max(np.abs(plain - theirs)) > 1e-6 * scale  # the adapter changes the outputs
