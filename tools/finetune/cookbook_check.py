"""OpenAI's published chat fine-tuning data checker, as a script: the baseline
`finetune validate` is compared with (figures and speed).

A transcription of the code cells of openai-cookbook
`examples/Chat_finetuning_data_prep.ipynb` (its 16,385-token version),
unchanged in logic; only the printing is replaced by one JSON object so
figures can be diffed.
Needs `tiktoken` and `numpy`; offline, point TIKTOKEN_CACHE_DIR at copies
of tiktoken-rs's embedded BPE files (see tools/finetune/bench.sh).

Usage: python cookbook_check.py FILE.jsonl
"""
import json
import sys
import time
from collections import defaultdict

import numpy as np
import tiktoken

started = time.perf_counter()
data_path = sys.argv[1]

with open(data_path, "r", encoding="utf-8") as f:
    dataset = [json.loads(line) for line in f]

format_errors = defaultdict(int)
for ex in dataset:
    if not isinstance(ex, dict):
        format_errors["data_type"] += 1
        continue
    messages = ex.get("messages", None)
    if not messages:
        format_errors["missing_messages_list"] += 1
        continue
    for message in messages:
        if "role" not in message or "content" not in message:
            format_errors["message_missing_key"] += 1
        if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
            format_errors["message_unrecognized_key"] += 1
        if message.get("role", None) not in ("system", "user", "assistant", "function"):
            format_errors["unrecognized_role"] += 1
        content = message.get("content", None)
        function_call = message.get("function_call", None)
        if (not content and not function_call) or not isinstance(content, str):
            format_errors["missing_content"] += 1
    if not any(message.get("role", None) == "assistant" for message in messages):
        format_errors["example_missing_assistant_message"] += 1

encoding = tiktoken.get_encoding("cl100k_base")


def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            num_tokens += len(encoding.encode(value))
            if key == "name":
                num_tokens += tokens_per_name
    num_tokens += 3
    return num_tokens


def num_assistant_tokens_from_messages(messages):
    num_tokens = 0
    for message in messages:
        if message["role"] == "assistant":
            num_tokens += len(encoding.encode(message["content"]))
    return num_tokens


n_missing_system = 0
n_missing_user = 0
n_messages = []
convo_lens = []
assistant_message_lens = []
for ex in dataset:
    messages = ex["messages"]
    if not any(message["role"] == "system" for message in messages):
        n_missing_system += 1
    if not any(message["role"] == "user" for message in messages):
        n_missing_user += 1
    n_messages.append(len(messages))
    convo_lens.append(num_tokens_from_messages(messages))
    assistant_message_lens.append(num_assistant_tokens_from_messages(messages))

MAX_TOKENS_PER_EXAMPLE = 16385
n_too_long = sum(l > MAX_TOKENS_PER_EXAMPLE for l in convo_lens)

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

n_epochs = TARGET_EPOCHS
n_train_examples = len(dataset)
if n_train_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
    n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train_examples)
elif n_train_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
    n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train_examples)
n_billing_tokens_in_dataset = sum(min(MAX_TOKENS_PER_EXAMPLE, length) for length in convo_lens)

print(json.dumps({
    "examples": len(dataset),
    "format_errors": dict(format_errors),
    "warnings": {"missing_system": n_missing_system, "missing_user": n_missing_user, "over_limit": n_too_long},
    "tokens": {"min": int(np.min(convo_lens)), "max": int(np.max(convo_lens)), "mean": float(np.mean(convo_lens)),
               "p50": float(np.median(convo_lens)), "sum": int(sum(convo_lens))},
    "assistant_tokens_sum": int(sum(assistant_message_lens)),
    "epochs": n_epochs,
    "billing_tokens": n_billing_tokens_in_dataset,
    "charged_tokens": n_epochs * n_billing_tokens_in_dataset,
    "seconds": round(time.perf_counter() - started, 2),
}))
