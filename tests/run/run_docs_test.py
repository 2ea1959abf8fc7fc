"""The code in README.md and docs/quickstart.md runs as written (only paths are substituted)."""
import pathlib
import re

import flax.linen as nn
import jax
import numpy as np

from hint_jax import t5

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
