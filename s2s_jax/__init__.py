"""s2s_jax: recurrent encoder-decoder (sequence-to-sequence) models in JAX/Flax.

``s2s_jax.load(path)`` returns a trained model (an export directory or a trained
workdir) as a ``s2s_jax.serving.loading.Model``: ``translate(sentences)`` and
``score(sources, references)``; ``s2s_jax.load([path, path2, ...])`` returns their
ensemble, decoding with the mean of their log-probabilities.
"""


def load(path, config=None):
    """The trained model in ``path``, or the ensemble of the models in a list of paths;
    see ``s2s_jax.serving.loading.load`` and ``s2s_jax.serving.ensemble.load``."""
    # Imported here: importing the package stays light, no JAX until a model is loaded.
    if isinstance(path, (list, tuple)):
        from s2s_jax.serving import ensemble

        return ensemble.load(path, config)
    from s2s_jax.serving import loading

    return loading.load(path, config)
