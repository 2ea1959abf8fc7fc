"""Serving-side data modules must import and work without TensorFlow."""
import subprocess
import sys

CODE = """
import sys
sys.modules['tensorflow'] = None
sys.modules['seqio'] = None
from hint_jax.data import converters, p3, pipeline, pretrain, rank_classification  # noqa
from hint_jax.data import sni_examples, sni_format, sni_metrics, sni_reader, synthetic, vocab
v = vocab.get_vocabulary()
assert v.decode(v.encode('reverse the words')) == 'reverse the words'
assert sni_metrics.evaluate(['a'], [['a']])['exact_match'] == 100.0
print('ok')
"""


def test_data_modules_import_without_tensorflow():
  proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                        check=False)
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
