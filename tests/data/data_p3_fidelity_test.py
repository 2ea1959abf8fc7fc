"""P3 as T0 (and the original HINT's `t0_train`) trains it: T0 training datasets only, each
dataset's 500k cap split over its templates."""
import json

from hint_jax.data import p3, t0_tasks


def _write(tmp_path, counts: dict[str, int]):
  (tmp_path / "templates").mkdir()
  for name, n in counts.items():
    recs = [{"template": name, "inputs": f"Review {i}: good? {name}", "targets": "yes"}
            for i in range(n)]
    (tmp_path / "templates" / f"{name}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in recs) + "\n")


def _per_task(split, cfg):
  out = {}
  for r in p3.records(split, cfg):
    out[r["task"]] = out.get(r["task"], 0) + 1
  return out


def test_only_t0_training_datasets_train_by_default(tmp_path):
  _write(tmp_path, {"glue_mrpc_paraphrase": 3, "cos_e_v1_11_explain": 3,
                    "super_glue_rte_GPT_3_style": 3, "anli_GPT_3_style_r1": 3,
                    "hellaswag_complete_first_then": 3, "story_cloze_2016_Answer_Given_options": 3,
                    "amazon_polarity_Is_this_review_score_eval": 3, "commonsense_qa_answer": 3,
                    "gigaword_summarize_": 3, "wiki_hop_masked_Choose_Best_Object_Candidate": 3})
  cfg = p3.P3Config(p3_dir=tmp_path, validation_per_template=0)
  assert _per_task("train", cfg) == {"glue_mrpc_paraphrase": 3, "cos_e_v1_11_explain": 3}
  everything = p3.P3Config(p3_dir=tmp_path, validation_per_template=0, t0_train_only=False)
  assert len(_per_task("train", everything)) == 10


def test_the_cap_is_per_dataset_split_over_its_templates(tmp_path):
  # amazon_polarity (3.6M in T0's table) is over any cap here: 3 templates share cap 12 -> 4 each.
  _write(tmp_path, {"amazon_polarity_a": 9, "amazon_polarity_b": 9, "amazon_polarity_c": 9,
                    "glue_mrpc_x": 9, "amazon_polarity_d_score_eval": 9})
  got = _per_task("train", p3.P3Config(p3_dir=tmp_path, validation_per_template=0, cap=12))
  assert got == {"amazon_polarity_a": 4, "amazon_polarity_b": 4, "amazon_polarity_c": 4,
                 "glue_mrpc_x": 9}  # mrpc (3,668 > 12) has one template here: limit 12
  # T0: a dataset at or under the cap keeps every example of every template.
  under = _per_task("train", p3.P3Config(p3_dir=tmp_path, validation_per_template=0, cap=5000))
  assert under["glue_mrpc_x"] == 9 and under["amazon_polarity_a"] == 9
  assert t0_tasks.template_cap(3_600_000, 9) == 55_555 and t0_tasks.template_cap(3668, 7) is None
  # An unknown template (filter off) is its own dataset, sized by its records.
  off = p3.P3Config(p3_dir=tmp_path, validation_per_template=0, cap=5, t0_train_only=False)
  assert _per_task("train", off)["amazon_polarity_d_score_eval"] == 5


def test_task_names_match_across_p3_spellings():
  assert t0_tasks.train_dataset("cos_e_v1.11_explain_why_human") == ("cos_e", "v1.11")
  assert t0_tasks.train_dataset("cnn_dailymail_3_0_0_tldr_summary") == ("cnn_dailymail", "3.0.0")
  assert t0_tasks.train_dataset("super_glue_copa_best_option") is None
  assert t0_tasks.train_dataset("wiki_qa_Jeopardy_style") == ("wiki_qa", None)
  assert len(t0_tasks.T0_TRAIN_DATASETS) == 38
  held = {t0_tasks.prefix(*d) for d in t0_tasks.T0_HELDOUT_DATASETS}
  assert not any(t0_tasks.train_dataset(p + "x") for p in held)


def test_shared_sample_keeps_its_t0_training_templates(shared_data):
  cfg = p3.P3Config(p3_dir=shared_data / "p3_sample")
  names = {r["task"] for r in p3.records("validation", cfg)}
  # 294 files: the 5 commonsense_qa templates are not T0 training data and 11 trec_fine_grained
  # files are empty.
  assert len(names) == 278
  assert not any(n.startswith("commonsense_qa") for n in names)


def test_the_originals_edited_prompts_are_the_instruction(shared_data, tmp_path):
  cfg = p3.P3Config(p3_dir=shared_data / "p3_sample")
  first = next(p3.records("validation", cfg))
  assert first["task"] == "adversarial_qa_dbert_answer_the_following_q"
  assert first["instruction"] == (
      'Given the following passage\n\n"[MASK]",\n\nanswer the following question. Note that the '
      "answer is present within the text.\n\nQuestion: [MASK]")
  prompts = p3.edited_prompts()
  assert len(prompts) == 399 and "[" not in prompts["cos_e_v1_11_explain_why_human"].replace(
      "[MASK]", "")
  recovered = next(p3.records("validation", p3.P3Config(p3_dir=cfg.p3_dir, edited_prompts=False)))
  assert recovered["instruction"] != first["instruction"] and "[MASK]" in recovered["instruction"]
  assert p3.edited_prompts(str(tmp_path / "absent.txt")) == {}
