"""The small CPU recipes run end to end as their gin headers say (at a few steps, on a few SNI
tasks and P3 templates), and a model with a vocabulary smaller than the tokenizer's is refused."""
import json
import os
import pathlib

import pytest

from hint_jax.run import main

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
FAST = ["--gin.TRAIN_STEPS=2", "--gin.optim.OptimConfig.warmup_steps=1",
        "--gin.checkpoint.CheckpointConfig.period=0",
        "--gin.train_config.TrainConfig.progress_bar=False"]


@pytest.fixture()
def small_data(tmp_path, monkeypatch):
  """$HINT_DATA_DIR with 2 SNI train tasks, 2 SNI test tasks, every task file (the held-out
  rank-classification tasks among them) and 3 P3 templates."""
  root = tmp_path / "data"
  splits = root / "sni" / "splits" / "default"
  splits.mkdir(parents=True)
  for split, n in (("train", 2), ("test", 2)):
    names = (SHARED / "sni" / "splits" / "default" / f"{split}_tasks.txt").read_text().split()
    (splits / f"{split}_tasks.txt").write_text("\n".join(names[:n]) + "\n")
  os.symlink(SHARED / "sni" / "tasks", root / "sni" / "tasks")
  templates = root / "p3_sample" / "templates"
  templates.mkdir(parents=True)
  for path in sorted((SHARED / "p3_sample" / "templates").glob("*.jsonl"))[:3]:
    os.symlink(path, templates / path.name)
  monkeypatch.setenv("HINT_DATA_DIR", str(root))
  return root


def _run(capsys, argv) -> str:
  code = main.main(argv)
  out, err = capsys.readouterr()
  assert code == 0, err[-2000:]
  return out.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("recipe,metric", [("small_sni", "rougeL"), ("small_p3", "accuracy")])
def test_small_recipe_trains_then_reports_the_papers_metric(small_data, tmp_path, capsys,
                                                             recipe, metric):
  del small_data
  model_dir = f"--gin.MODEL_DIR='{tmp_path / 'run'}'"
  header = (pathlib.Path(main.gin_utils.DEFAULT_SEARCH_PATH) / "runs" / f"{recipe}.gin"
            ).read_text()
  assert f"--gin_file=runs/{recipe}.gin" in header and f"runs/{recipe}_eval.gin" in header
  assert _run(capsys, ["train", f"--gin_file=runs/{recipe}.gin", model_dir, *FAST]) == (
      "hint-jax: done: 2")
  result = json.loads(_run(capsys, ["eval", f"--gin_file=runs/{recipe}_eval.gin", model_dir,
                                    "--max_examples=2", "--gin.BATCH_SIZE=8"]))
  assert result["step"] == 2 and 0.0 <= result[metric] <= 100.0, result
  assert pathlib.Path(result["report"] + ".md").exists()
  if metric == "accuracy":  # every held-out dataset, 2 examples of each of its tasks
    assert result["examples"] == 16 and "accuracy_winogrande" in result
  else:
    assert result["examples"] == 4 and "exact_match" in result


def test_model_vocabulary_smaller_than_the_tokenizer_is_refused(tmp_path, capsys):
  code = main.main(["train", "--gin_file=models/hint_tiny.gin", "--gin_file=runs/finetune_sni.gin",
                    f"--gin.MODEL_DIR='{tmp_path / 'run'}'"])
  err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hint-jax")]
  assert code == 1 and len(err) == 1, err
  assert "vocabulary has 97 tokens" in err[0] and "tokenized with 8100" in err[0], err[0]
  assert not (tmp_path / "run").exists()  # refused before anything is written
