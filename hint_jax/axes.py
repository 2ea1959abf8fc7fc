"""Logical axis names (one vocabulary for params and activations) and default mesh rules.

Parameters use the T5X names below; activations (and generated task parameters, which are
activations of the hypernetwork) use names starting with `act_`. Layers refer to these
constants, never to mesh axes: the rule tables map logical names onto the mesh `('data', 'model')`.
"""

# Parameter axes.
VOCAB = "vocab"
EMBED = "embed"
MLP = "mlp"
HEADS = "heads"
KV = "kv"
JOINED_KV = "joined_kv"
RELPOS = "relpos_buckets"
LAYERS = "layers"
HYPER_SLOTS = "hyper_slots"  # rows of the hypernetwork's component-embedding table
HYPER_EMBED = "hyper_embed"  # width of the component-embedding table (sharded: ~50k rows at XL)
HYPER_OUT = "hyper_out"  # output units of a generator MLP
ADAPTER = "adapter"  # adapter bottleneck / LoRA rank of static (non-generated) params
# The two dimensions of a pretrained sentence encoder's parameters (the optional BERT/MiniLM
# instruction encoder, `hypernet/sentence_encoder.py`): a kernel's input and output, a table's
# rows and width (1-D params use the second). Replicated: the encoder is small beside any
# backbone it serves (MiniLM-L6: 22M parameters) and its 30522-row vocabulary divides no mesh axis.
PRETRAINED_IN = "pretrained_in"
PRETRAINED_OUT = "pretrained_out"

# Activation axes.
ACT_BATCH = "act_batch"
ACT_LENGTH = "act_length"
ACT_EMBED = "act_embed"
ACT_HEADS = "act_heads"
ACT_KV = "act_kv"
ACT_MLP = "act_mlp"
ACT_VOCAB = "act_vocab"
ACT_LAYERS = "act_layers"
ACT_RANK = "act_rank"
ACT_PREFIX = "act_prefix"
# The generated dimension of generated task parameters (a generator's output units, e.g. the
# D of an adapter's down/up weights): sharded like `hyper_out`, so nothing is re-laid out.
ACT_GENERATED = "act_generated"

DATA = "data"
MODEL = "model"
MESH_AXES = (DATA, MODEL)

# T5X's standard 1-D rules: batch over data, the wide dims over model, the rest replicated.
STANDARD_RULES = (
    (ACT_BATCH, DATA),
    (VOCAB, MODEL),
    (MLP, MODEL),
    (HEADS, MODEL),
    (JOINED_KV, MODEL),
    (HYPER_OUT, MODEL),
    (HYPER_EMBED, MODEL),
    (ACT_GENERATED, MODEL),
    (ACT_HEADS, MODEL),
    (ACT_MLP, MODEL),
    (ACT_VOCAB, MODEL),
    (EMBED, None),
    (KV, None),
    (RELPOS, None),
    (LAYERS, None),
    (HYPER_SLOTS, None),
    (ADAPTER, None),
    (PRETRAINED_IN, None),
    (PRETRAINED_OUT, None),
    (ACT_LENGTH, None),
    (ACT_EMBED, None),
    (ACT_KV, None),
    (ACT_LAYERS, None),
    (ACT_RANK, None),
    (ACT_PREFIX, None),
)

# 2-D (FSDP-like): additionally shard the embed dimension of every weight over `data`.
FSDP_RULES = tuple((name, DATA) if name == EMBED else (name, mesh) for name, mesh in STANDARD_RULES)

PARAM_AXES = (VOCAB, EMBED, MLP, HEADS, KV, JOINED_KV, RELPOS, LAYERS, HYPER_SLOTS, HYPER_EMBED,
              HYPER_OUT, ADAPTER, PRETRAINED_IN, PRETRAINED_OUT)
