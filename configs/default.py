"""The embedded default job: human-written dates -> ISO dates, with attention.

Trains on the CPU in a few minutes, no download:

  python -m s2s_jax.main --config=configs/default.py --workdir=runs/default

then use it (the workdir stores its config) or export it:

  python -m s2s_jax.main --workdir=runs/default --mode=eval
  echo "march 3rd 1999" | python -m s2s_jax.main --workdir=runs/default --mode=translate
  python -m s2s_jax.main --workdir=runs/default --mode=export --export_dir=exports/dates
"""

from s2s_jax.config import base_config


def get_config():
    config = base_config()
    config.data.task = "dates"  # "saturday 3 march 1999", "3/3/99", ... -> "1999-03-03"
    config.data.buckets = ((16, 12), (32, 12))  # source up to ~31 chars, target 10 + EOS
    config.model.attention = "bahdanau"  # additive attention, query s_{t-1}
    config.model.bidirectional = True  # memory of 2 * hidden_size per source character
    config.train.num_steps = 1_200  # ~3 epochs of 50k pairs at batch 128
    config.train.schedule = "step"  # constant for an epoch, then halved every half epoch
    config.train.decay_start_epoch = 1.0
    config.train.decay_every_epochs = 0.5
    config.train.eval_every = 400  # validation exact match / BLEU / chrF
    config.train.checkpoint_every = 200  # resume point after a crash
    return config
