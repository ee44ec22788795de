"""Synthetic tasks generated in-process (no download); the argument names the task.

python -m s2s_jax.main --config=configs/synthetic.py:dates --workdir=runs/dates
python -m s2s_jax.main --config=configs/synthetic.py:addition --workdir=runs/addition
python -m s2s_jax.main --config=configs/synthetic.py:reversal --workdir=runs/reversal
"""

from s2s_jax.config import base_config
from s2s_jax.config.arguments import parse_arg

# Per task: fixed (src_len, tgt_len) batch shapes covering the generated lengths.
BUCKETS = {
    "dates": ((16, 12), (32, 12)),  # sources up to ~31 chars, targets always 10 (+EOS)
    "addition": ((8, 8), (16, 8)),  # "12345+67890" + EOS; sums have <= 6 digits
    "reversal": ((12, 12), (24, 24)),  # 1..20 letters
    "copy": ((16, 16), (32, 32), (64, 64)),  # 1..60 letters (the bottleneck study)
}


def get_config(arg: str = "dates"):
    task = parse_arg(arg, task="dates").task
    config = base_config()
    config.data.source = "synthetic"
    config.data.task = task  # dates | addition | reversal | copy
    config.data.buckets = BUCKETS.get(task, config.data.buckets)
    config.eval.bleu_tokenize = "char"  # outputs are short strings: score characters
    return config
