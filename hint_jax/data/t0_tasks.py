"""The T0 training and held-out datasets, by P3 task-name prefix, and T0's per-dataset cap.

Facts from the T0 dataset table (bigscience `datasets.csv`, as shipped by the original HINT in
`hyper_task_descriptions/seqio_tasks/datasets.csv`): the 38 `do_train = BASE` datasets with their
train sizes, and the `do_eval = BASE` held-out datasets. P3 names a task
`<dataset>_<subset>_<template>` with every other character replaced by "_" (`cos_e_v1.11` is
`cos_e_v1_11` in some releases), so names are compared after mapping every non-alphanumeric run to
"_".
"""
import re

MAX_EXAMPLES_PER_DATASET = 500_000  # T0: a dataset larger than this is capped, split over templates

# (dataset, subset) -> train size, the T0 training mixture ("BASE").
T0_TRAIN_DATASETS: dict[tuple[str, str | None], int] = {
    ("glue", "mrpc"): 3668, ("glue", "qqp"): 363846, ("paws", "labeled_final"): 49401,
    ("kilt_tasks", "hotpotqa"): 88869, ("wiki_qa", None): 20360,
    ("adversarial_qa", "dbidaf"): 10000, ("adversarial_qa", "dbert"): 10000,
    ("adversarial_qa", "droberta"): 10000, ("duorc", "SelfRC"): 60721,
    ("duorc", "ParaphraseRC"): 69524, ("ropes", None): 10924, ("quoref", None): 19399,
    ("cos_e", "v1.11"): 9741, ("cosmos_qa", None): 25262, ("dream", None): 6116,
    ("qasc", None): 8134, ("quail", None): 10246, ("quarel", None): 1941, ("quartz", None): 2696,
    ("sciq", None): 11679, ("social_i_qa", None): 33410, ("wiki_hop", "original"): 43738,
    ("wiqa", None): 29808, ("amazon_polarity", None): 3600000, ("app_reviews", None): 288065,
    ("imdb", None): 25000, ("rotten_tomatoes", None): 8530, ("yelp_review_full", None): 650000,
    ("common_gen", None): 67389, ("wiki_bio", None): 582659, ("cnn_dailymail", "3.0.0"): 287113,
    ("gigaword", None): 3803957, ("multi_news", None): 44972, ("samsum", None): 14732,
    ("xsum", None): 204045, ("ag_news", None): 120000, ("dbpedia_14", None): 560000,
    ("trec", None): 5452,
}

# The held-out evaluation datasets (never trained on by T0 or HINT).
T0_HELDOUT_DATASETS: tuple[tuple[str, str | None], ...] = (
    ("super_glue", "wsc.fixed"), ("winogrande", "winogrande_xl"), ("super_glue", "cb"),
    ("super_glue", "rte"), ("anli", None), ("super_glue", "copa"), ("story_cloze", "2016"),
    ("hellaswag", None), ("super_glue", "wic"))

# Training templates the original HINT left out of `t0_train` (its TASK_BLACKLIST entries that
# belong to T0 training datasets: "Tasks with broken cached files").
EXCLUDED_TEMPLATES: tuple[str, ...] = ("gigaword_summarize_",)

SCORE_EVAL_SUFFIX = "_score_eval"


def normalise(name: str) -> str:
  return re.sub(r"[^0-9A-Za-z]+", "_", name)


def prefix(dataset: str, subset: str | None) -> str:
  """The P3 task-name prefix of a dataset (normalised), e.g. "glue_mrpc_"."""
  return normalise(dataset + (f"_{subset}_" if subset is not None else "_"))


_TRAIN_PREFIXES = sorted(((prefix(*d), d) for d in T0_TRAIN_DATASETS), key=lambda p: -len(p[0]))
_EXCLUDED = frozenset(normalise(t) for t in EXCLUDED_TEMPLATES)


def train_dataset(task_name: str) -> tuple[str, str | None] | None:
  """The T0 training dataset of a P3 task (template) name; None if it is not one that T0 trains
  on (held-out, `_score_eval` scoring variants, other datasets, excluded templates)."""
  name = normalise(task_name)
  if name.endswith(SCORE_EVAL_SUFFIX) or name in _EXCLUDED:
    return None
  for p, dataset in _TRAIN_PREFIXES:
    if name.startswith(p):
      return dataset
  return None


def template_cap(train_size: int, num_templates: int,
                 cap: int = MAX_EXAMPLES_PER_DATASET) -> int | None:
  """T0's per-template example cap: `cap // num_templates` for a dataset over `cap`, else None
  (every example of every template)."""
  return cap // max(1, num_templates) if train_size > cap else None
