"""Feature names shared by tasks, feature converters and models."""

# Output features of every SeqIO task (strings before tokenization).
INSTRUCTION = "instruction"
INPUTS = "inputs"
TARGETS = "targets"

# Model features (int32 arrays).
HYPER_ENCODER_INPUT_TOKENS = "hyper_encoder_input_tokens"  # [T, I] table of task instructions
TASK_INDEX = "task_index"  # [B] row of the instruction table for each example
ENCODER_INPUT_TOKENS = "encoder_input_tokens"  # [B, L]
DECODER_INPUT_TOKENS = "decoder_input_tokens"  # [B, T] targets shifted right, start id 0
DECODER_TARGET_TOKENS = "decoder_target_tokens"  # [B, T]
DECODER_LOSS_WEIGHTS = "decoder_loss_weights"  # [B, T]

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
