"""Independent float64 numpy versions of the cell equations, shared by the tests."""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_params(layer_params) -> dict[str, np.ndarray]:
    """``{"cell": {"ih": ..., "hh": ...}}`` (a RecurrentLayer's params) -> float64 arrays."""
    cell = layer_params["cell"]
    p = {"w_ih": cell["ih"]["kernel"], "w_hh": cell["hh"]["kernel"]}
    if "bias" in cell["ih"]:
        p["b_ih"] = cell["ih"]["bias"]
    if "bias" in cell["hh"]:
        p["b_hh"] = cell["hh"]["bias"]
    p.update({name: value for name, value in cell.items() if name not in ("ih", "hh")})
    return {k: np.asarray(v, np.float64) for k, v in p.items()}


def layer_norm(v, scale):
    """Ba et al. 2016: ``scale * (v - mean) / sqrt(variance + 1e-5)`` over the features."""
    mean = v.mean(axis=-1, keepdims=True)
    variance = ((v - mean) ** 2).mean(axis=-1, keepdims=True)
    return scale * (v - mean) / np.sqrt(variance + 1e-5)


def cell_step(cell: str, p, carry, x):
    """One step of the seeds' equations: ``carry`` is a tuple of ``[..., H]`` arrays."""
    if cell == "ln_lstm":  # layer-normalised (Ba et al. 2016, section 3.1)
        h, c = carry
        z = (
            layer_norm(x @ p["w_ih"], p["x_scale"])
            + layer_norm(h @ p["w_hh"], p["h_scale"])
            + p["bias"]
        )
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(layer_norm(c, p["c_scale"]) + p["c_bias"])
        return (h, c), h
    if cell == "lstm":
        h, c = carry
        i, f, g, o = np.split(x @ p["w_ih"] + p["b_ih"] + h @ p["w_hh"], 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return (h, c), h
    (h,) = carry
    if cell == "gru":
        x_r, x_z, x_n = np.split(x @ p["w_ih"] + p["b_ih"], 3, axis=-1)
        h_r, h_z, h_n = np.split(h @ p["w_hh"] + p["b_hh"], 3, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * h_n)
        h = (1.0 - z) * n + z * h
        return (h,), h
    if cell == "rnn":
        h = np.tanh(x @ p["w_ih"] + p["b_ih"] + h @ p["w_hh"])
        return (h,), h
    raise ValueError(cell)
