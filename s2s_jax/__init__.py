"""s2s_jax: recurrent encoder-decoder (sequence-to-sequence) models in JAX/Flax.

``s2s_jax.load(path)`` returns a trained model (an export directory or a trained
workdir) as a ``s2s_jax.serving.loading.Model``: ``translate(sentences)`` and
``score(sources, references)``.
"""


def load(path: str, config=None):
    """The trained model in ``path``; see ``s2s_jax.serving.loading.load``."""
    from s2s_jax.serving import loading  # importing the package stays light: no JAX until here

    return loading.load(path, config)
