"""Inference modules for the families beyond the spine, registered by class name.

Each function builds an :class:`~deepatlas.export.protocol.ExportSpec` from a fitted estimator's
own attributes (the model files are left as they are) and checks it against the estimator's
public API through ``reference``:

===================  ======================================  =====================================
family               module: raw input -> outputs            reference
===================  ======================================  =====================================
autoencoders, VAE    ``encoder``: data -> ``code`` (the       ``transform``
                     VAE's posterior mean);
                     ``decoder``: code -> ``reconstruction``  ``inverse_transform``
                     in the data's shape and units
GANs                 ``generator``: (z [, one-hot label       ``sample(n, seed=s)`` on the codes
                     or InfoGAN codes]) -> ``samples`` in     it draws; elsewhere the generator
                     the data's units                         called directly
RBM, Gaussian RBM,   data -> ``hidden`` probabilities         ``transform``
conv RBM, DBN,       (the up pass for a DBN)
conv DBN
DBN classifier       data -> ``logits``, ``probabilities``    ``predict_proba``
LISTA                signal -> sparse ``code``                ``transform``
sequence taggers     (B, T, F) -> per-step ``logits``,        ``predict_proba``
                     ``probabilities``, dynamic ``time``
CTC recognizer       (B, T, F) -> per-step ``log_probs``      ``predict_log_proba``
                     (decoding stays outside the graph)
RL agents            observation -> greedy ``action`` (and    ``predict(obs, deterministic=True)``
                     ``q_values`` / ``logits``)
CharLM               character ids (B, T) -> next-character   the network called directly (no
                     ``log_probs``, dynamic ``time``          public per-step method)
TextClassifier       character ids (B, L), 0-padded ->        ``predict_proba`` of the documents
                     ``logits``, ``probabilities``            the ids spell
===================  ======================================  =====================================

References: Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural
networks"; Kingma & Welling (2014), "Auto-encoding variational Bayes"; Goodfellow et al. (2014),
"Generative adversarial nets"; Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep
belief nets"; Gregor & LeCun (2010), "Learning fast approximations of sparse coding"; Graves et
al. (2006), "Connectionist temporal classification"; Mnih et al. (2015), "Human-level control
through deep reinforcement learning".
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.errors import InputError
from deepatlas.export.builtin import FeatureStandardize, _example_and_random, supervised_spec
from deepatlas.export.protocol import ExportSpec, register_exporter

_HELD_OUT_ROWS = 256  # codes drawn for a generator's held-out check


def _cpu(module: nn.Module) -> nn.Module:
    """A CPU copy in evaluation mode (the estimator keeps its own module where it is)."""
    return copy.deepcopy(module).cpu().eval()


def _buffer(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, np.float32))


def _example(random_input) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(random_input(np.random.default_rng(0), 4)))


def _shape(est) -> tuple[int, ...]:
    return tuple(int(s) for s in est.input_shape_)


# ---- autoencoders and the VAE: encoder and decoder ---------------------------------------------
class Encode(nn.Module):
    """Data (B, *S) -> code (B, K): the network's own ``encode`` (standardisation included)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encode(x)


class Decode(Encode):
    """Code (B, K) -> reconstruction (B, *S) in the data's units: the network's own ``decode``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.decode(z)


def _autoencoder_data_sampler(est):
    """Random inputs on the data's scale: the saved standardisation when there is one, [0, 1]
    for a Bernoulli VAE or a sigmoid output, else a standard normal."""
    shape = _shape(est)
    if getattr(est, "standardize", False):
        mean = np.asarray(est.mean_, np.float32).reshape(shape)
        scale = np.asarray(est.scale_, np.float32).reshape(shape)
        return lambda rng, n: (mean + scale * rng.standard_normal((n, *shape))).astype(np.float32)
    if getattr(est, "likelihood", None) == "bernoulli" or getattr(est, "output_activation", None) == "sigmoid":
        return lambda rng, n: rng.random((n, *shape), dtype=np.float32)
    return lambda rng, n: rng.standard_normal((n, *shape)).astype(np.float32)


def autoencoder_spec(est, part: str) -> ExportSpec:
    est._check_fitted()
    net = _cpu(est.module_)
    vae = type(est).__name__ == "VAE"
    meta = {"part": part, "code_size": int(est.code_size)}
    if getattr(est, "standardize", False):
        meta["preprocessing"] = {
            "in_graph": True,
            "standardize": True,
            "mean": np.asarray(est.mean_, np.float64).tolist(),
            "scale": np.asarray(est.scale_, np.float64).tolist(),
        }
    if part == "encoder":
        random_input = _autoencoder_data_sampler(est)
        meta.update(kind="encoder", code="posterior mean" if vae else "code")
        return ExportSpec(
            module=Encode(net).eval(),
            example_input=_example(random_input),
            output_names=("code",),
            metadata=meta,
            reference=lambda X: {"code": est.transform(X)},
            random_input=random_input,
        )
    K = int(est.code_size)

    def random_codes(rng, n):  # the VAE's prior; a plain autoencoder's codes have no fixed scale
        return rng.standard_normal((n, K)).astype(np.float32)

    def codes_of_data(X, label):
        return None if X is None else (np.asarray(est.transform(X), np.float32), f"{label}, encoded")

    meta.update(kind="decoder", output_shape=list(_shape(est)))
    if vae:
        meta.update(prior="standard normal", generator="sample(n) = decoder(z), z ~ N(0, I)")
    return ExportSpec(
        module=Decode(net).eval(),
        example_input=_example(random_codes),
        output_names=("reconstruction",),
        metadata=meta,
        reference=lambda Z: {"reconstruction": est.inverse_transform(Z)},
        random_input=random_codes,
        held_out=codes_of_data,
    )


for _name in ("Autoencoder", "DenoisingAutoencoder", "SparseAutoencoder", "ConvAutoencoder", "VAE"):
    register_exporter(_name, parts=("encoder", "decoder"))(autoencoder_spec)


# ---- GAN generators ----------------------------------------------------------------------------
class Generate(nn.Module):
    """Generator input (B, latent [+ codes]) -> samples (B, *S) in the data's units."""

    def __init__(self, generator: nn.Module, center, scale, shape):
        super().__init__()
        self.generator = generator
        self.register_buffer("center", _buffer(center))
        self.register_buffer("scale", _buffer(scale))
        self.shape = tuple(shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self._generate(z)  # (B, F), in the training scaling
        return (out * self.scale + self.center).unflatten(1, self.shape)  # (B, *S)

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        # The generators' own forward reshapes with len(z), which the TorchScript exporter would
        # freeze to the example's batch size; the same layers, reshaped by axis 1 only:
        G = self.generator
        if hasattr(G, "project") and hasattr(G, "up"):  # DCGAN: (B, latent) -> (B, C, H, W)
            return G.up(G.project(z).unflatten(1, G.start)).flatten(1)
        if hasattr(G, "net") and hasattr(G, "bounded"):  # MLP generator: (B, latent) -> (B, F)
            out = G.net(z)
            return torch.tanh(out) if G.bounded else out
        return G(z).flatten(1)


def _gan_layout(est) -> list[dict]:
    """What each column block of the generator's input means."""
    layout = [{"name": "z", "size": int(est.latent_dim), "distribution": "standard normal"}]
    name = type(est).__name__
    if name == "CGAN":
        classes = est.classes_.tolist()
        layout.append({"name": "label_onehot", "size": len(classes), "classes": classes})
    elif name == "InfoGAN":
        layout.append({"name": "category_onehot", "size": int(est.n_categories)})
        if est.n_continuous:
            layout.append({"name": "continuous", "size": int(est.n_continuous), "distribution": "uniform(-1, 1)"})
    return layout


def gan_spec(est, part=None) -> ExportSpec:
    from deepatlas.device import make_generator

    est._check_fitted()
    shape = _shape(est)
    module = Generate(_cpu(est.module_.generator), est.center_, est.scale_, shape).eval()
    layout = _gan_layout(est)

    def random_codes(rng, n):
        blocks = [rng.standard_normal((n, layout[0]["size"]))]
        for block in layout[1:]:
            if block["name"].endswith("onehot"):
                blocks.append(np.eye(block["size"])[rng.integers(0, block["size"], n)])
            else:
                blocks.append(rng.uniform(-1, 1, (n, block["size"])))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    # The held-out check uses the very codes ``sample(n, seed=s)`` draws, so the reference is the
    # public ``sample`` itself; on other inputs it is the estimator's generator called directly.
    seed = int(est.seed or 0)
    device = next(est.module_.parameters()).device
    with torch.no_grad():
        drawn = est._sample_codes(_HELD_OUT_ROWS, None, make_generator(seed, device))["z"]
    drawn = np.ascontiguousarray(drawn.float().cpu().numpy())

    def reference(Z):
        if Z.shape == drawn.shape and np.array_equal(Z, drawn):
            return {"samples": est.sample(len(Z), seed=seed)}
        G = est.module_.generator.eval()
        with torch.no_grad():
            out = G(torch.as_tensor(Z, device=device)).float().cpu().numpy()
        return {"samples": est._unscale(out)}

    return ExportSpec(
        module=module,
        example_input=_example(random_codes),
        input_name="z",
        output_names=("samples",),
        metadata={"kind": "generator", "input_layout": layout, "output_shape": list(shape)},
        reference=reference,
        random_input=random_codes,
        held_out=lambda X, label: (drawn, f"the codes sample({_HELD_OUT_ROWS}, seed={seed}) draws"),
    )


for _name in ("GAN", "WGAN", "WGANGP", "DCGAN", "CGAN", "InfoGAN"):
    register_exporter(_name)(gan_spec)


# ---- RBMs and DBNs: hidden probabilities -------------------------------------------------------
class HiddenProbabilities(nn.Module):
    """Data (B, *S) -> ``sigmoid(x W_1 + c_1)`` ... through each layer: (B, n_hidden_last)."""

    def __init__(self, affines: list[tuple[torch.Tensor, torch.Tensor]]):
        super().__init__()
        self.layers = nn.ModuleList()
        for W, c in affines:  # W (n_in, n_out), c (n_out,)
            linear = nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                linear.weight.copy_(W.T)
                linear.bias.copy_(c)
            self.layers.append(linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # (B, n_visible)
        for layer in self.layers:
            h = torch.sigmoid(layer(h))
        return h


class ConvHiddenProbabilities(nn.Module):
    """Images (B, C, H, W) -> per layer ``max_pool(sigmoid(conv(v, W) + c))`` -> flattened."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], pools: list[int]):
        super().__init__()
        self.pools = list(pools)
        self.weights = nn.ParameterList(
            [nn.Parameter(W.detach().cpu().clone(), requires_grad=False) for W, _ in layers]
        )
        self.biases = nn.ParameterList([nn.Parameter(c.detach().cpu().clone(), requires_grad=False) for _, c in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for W, c, pool in zip(self.weights, self.biases, self.pools):
            h = torch.sigmoid(F.conv2d(h, W, c))  # (B, K, H', W')
            if pool > 1:
                h = F.max_pool2d(h, pool, ceil_mode=True)
        return h.flatten(1)


def _unit_interval(shape):
    return lambda rng, n: rng.random((n, *shape), dtype=np.float32)


def _transform_spec(est, module, random_input, meta) -> ExportSpec:
    return ExportSpec(
        module=module.eval(),
        example_input=_example(random_input),
        output_names=("hidden",),
        metadata={"kind": "transform", **meta},
        reference=lambda X: {"hidden": est.transform(X)},
        random_input=random_input,
    )


def rbm_spec(est, part=None) -> ExportSpec:
    from deepatlas.models.dbn import hidden_affine  # folds a Gaussian RBM's standardisation in

    est._check_fitted()
    shape = _shape(est)
    meta = {"output": "p(h = 1 | v)"}
    if type(est).__name__ == "GaussianRBM":
        sigma = float(est.sigma)
        mean = np.asarray(est.mean_, np.float32).reshape(shape)
        std = (np.asarray(est.scale_, np.float32) / sigma).reshape(shape)
        meta["preprocessing"] = {
            "in_graph": True,
            "standardize": True,
            "mean": np.asarray(est.mean_, np.float64).tolist(),
            "scale": np.asarray(est.scale_, np.float64).tolist(),
        }

        def random_input(rng, n):
            return (mean + std * rng.standard_normal((n, *shape))).astype(np.float32)

    else:
        random_input = _unit_interval(shape)
    return _transform_spec(est, HiddenProbabilities([hidden_affine(est)]), random_input, meta)


def dbn_spec(est, part=None) -> ExportSpec:
    from deepatlas.models.dbn import hidden_affine

    est._check_fitted()
    shape = _shape(est)
    first = est.layers_[0]
    if type(first).__name__ == "GaussianRBM":
        mean = np.asarray(first.mean_, np.float32).reshape(shape)
        std = (np.asarray(first.scale_, np.float32) / float(first.sigma)).reshape(shape)

        def random_input(rng, n):
            return (mean + std * rng.standard_normal((n, *shape))).astype(np.float32)

    else:
        random_input = _unit_interval(shape)
    module = HiddenProbabilities([hidden_affine(layer) for layer in est.layers_])
    return _transform_spec(est, module, random_input, {"output": "top-layer p(h = 1 | v) after one up pass"})


def conv_rbm_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    if type(est).__name__ == "ConvRBM":
        layers, pools = [(est.W_, est.c_)], [int(est.pool_size)]
    else:  # ConvDBN: each layer's maps are pooled by the stack's pool_size
        layers = [(layer.W_, layer.c_) for layer in est.layers_]
        pools = [int(est.pool_size)] * len(layers)
    shape = _shape(est)  # (C, H, W)
    module = ConvHiddenProbabilities(layers, pools)
    return _transform_spec(est, module, _unit_interval(shape), {"output": "pooled hidden probability maps, flattened"})


register_exporter("RBM")(rbm_spec)
register_exporter("GaussianRBM")(rbm_spec)
register_exporter("DBN")(dbn_spec)
register_exporter("ConvRBM")(conv_rbm_spec)
register_exporter("ConvDBN")(conv_rbm_spec)
register_exporter("DBNClassifier")(supervised_spec)  # a plain Sequential on standardised inputs


# ---- LISTA ---------------------------------------------------------------------------------------
class FlatCoder(nn.Module):
    """Signals (B, *S) -> codes (B, K) through the unrolled network."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def lista_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    shape = _shape(est)
    D = np.asarray(est.components_, np.float32)  # (K, F) atoms
    K = len(D)

    def random_input(rng, n):  # signals on the data's scale: sparse mixtures of the atoms, plus noise
        codes = rng.standard_normal((n, K)) * (rng.random((n, K)) < max(3 / K, 0.1))
        X = codes @ D + 0.05 * rng.standard_normal((n, D.shape[1]))
        return X.reshape(n, *shape).astype(np.float32)

    return ExportSpec(
        module=FlatCoder(_cpu(est.module_)).eval(),
        example_input=_example(random_input),
        output_names=("code",),
        metadata={"kind": "transform", "n_atoms": K, "n_layers": int(est.n_layers)},
        reference=lambda X: {"code": est.transform(X)},
        random_input=random_input,
    )


register_exporter("LISTA")(lista_spec)


# ---- sequence taggers and the CTC recognizer: per-step outputs, dynamic time -----------------------
class PerStep(nn.Module):
    """(B, T, F) raw -> per-step outputs: ``(logits, probabilities)`` (B, T, C) for a tagger, the
    network's own ``log_probs`` (B, T, C) for the CTC recognizer."""

    def __init__(self, net: nn.Module, mean, scale, log_probs: bool):
        super().__init__()
        self.standardize = FeatureStandardize(mean, scale)
        self.net = net
        self.log_probs = log_probs

    def forward(self, x: torch.Tensor):
        out = self.net(self.standardize(x))  # (B, T, C)
        return out if self.log_probs else (out, torch.softmax(out, dim=-1))


_EXAMPLE_STEPS = 8


def per_step_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    name = type(est).__name__
    if getattr(est, "masked_", False):
        raise InputError(
            f"{name} was trained on sequences of different lengths (a masked network); "
            "only networks trained on equal-length sequences export."
        )
    ctc = name == "CTCRecognizer"
    example, random_input = _example_and_random(est, (_EXAMPLE_STEPS, int(est.n_features_in_)), per_feature=True)
    module = PerStep(_cpu(est.module_), est.mean_, est.scale_, log_probs=ctc).eval()
    meta = {
        "preprocessing": {
            "in_graph": True,
            "standardize": bool(getattr(est, "standardize", True)),
            "per": "feature",
            "mean": np.asarray(est.mean_, np.float64).tolist(),
            "scale": np.asarray(est.scale_, np.float64).tolist(),
        }
    }
    if ctc:
        meta.update(kind="sequence", blank=0, alphabet=est.alphabet_, decoding="outside the graph (greedy or beam)")
        names = ("log_probs",)

        def reference(X):
            return {"log_probs": est.predict_log_proba(X)}

    else:
        meta.update(kind="tagger", classes=est.classes_.tolist(), decision="argmax per step")
        names = ("logits", "probabilities")

        def reference(X):
            return {"probabilities": np.asarray(est.predict_proba(X))}

    return ExportSpec(
        module=module,
        example_input=example,
        output_names=names,
        metadata=meta,
        dynamic_axes={0: "batch", 1: "time"},
        reference=reference,
        random_input=random_input,
    )


for _name in ("SequenceTagger", "GRUTagger", "LSTMTagger", "PeepholeLSTMTagger", "BiLSTMTagger", "CTCRecognizer"):
    register_exporter(_name)(per_step_spec)


# ---- RL agents: the greedy policy ----------------------------------------------------------------
class GreedyDiscrete(nn.Module):
    """Observations (B, *O) -> (action (B,) int64 = argmax of the head, the head's values (B, A))."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, obs: torch.Tensor):
        values = self.head(obs.flatten(1))  # (B, A): Q-values or policy logits
        return values.argmax(dim=1), values


class GaussianMean(nn.Module):
    """Observations (B, *O) -> the policy's mean action (B, D), clipped into the action box."""

    def __init__(self, actor: nn.Module, low, high):
        super().__init__()
        self.actor = actor
        self.register_buffer("low", _buffer(low))
        self.register_buffer("high", _buffer(high))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(self.actor(obs.flatten(1)), self.low), self.high)


_ROLLOUT_STEPS = 512


def greedy_rollouts(agent, n_steps: int = _ROLLOUT_STEPS, seed: int = 20_000) -> np.ndarray:
    """Observations the greedy policy meets in its environment (episodes seeded ``seed``, ``seed
    + 1``...), up to ``n_steps``: held-out inputs on the policy's own distribution."""
    from deepatlas.rl.base import env_id_of, make_env

    env = make_env(env_id_of(agent.env))
    seen: list[np.ndarray] = []
    try:
        episode = 0
        while len(seen) < n_steps:
            obs, _ = env.reset(seed=seed + episode)
            done = False
            while not done and len(seen) < n_steps:
                seen.append(np.asarray(obs, np.float32))
                act = agent.predict(obs, deterministic=True)
                obs, _, term, trunc, _ = env.step(act.item() if agent.action_kind_ == "discrete" else act)
                done = term or trunc
            episode += 1
    finally:
        env.close()
    return np.stack(seen)


def policy_spec(agent, part=None) -> ExportSpec:
    from deepatlas.rl.base import env_id_of

    agent._check_fitted()
    shape = tuple(int(s) for s in agent.obs_shape_)
    env_id = env_id_of(agent.env)
    meta = {"kind": "policy", "env": env_id, "action_kind": agent.action_kind_, "decision": "greedy"}
    try:
        observed = greedy_rollouts(agent)
        mean, std = observed.mean(axis=0), observed.std(axis=0) + 1e-3
    except Exception as exc:  # e.g. the environment's package is not installed here
        observed, mean, std = None, np.zeros(shape, np.float32), np.ones(shape, np.float32)
        meta["rollouts"] = f"none ({type(exc).__name__}: {str(exc).strip()[:200]}); random inputs only"

    def random_input(rng, n):  # on the scale of the observations the policy meets
        return (mean + std * rng.standard_normal((n, *shape))).astype(np.float32)

    if agent.action_kind_ == "discrete":
        head = agent.q_net_ if hasattr(agent, "q_net_") else agent.policy_.actor
        values = "q_values" if hasattr(agent, "q_net_") else "logits"
        module = GreedyDiscrete(_cpu(head))
        names = ("action", values)
        meta.update(n_actions=int(agent.n_actions_), action="argmax of " + values)
    else:
        module = GaussianMean(_cpu(agent.policy_.actor), agent.action_low_, agent.action_high_)
        names = ("action",)
        meta.update(action="mean of the Gaussian policy, clipped into the action box")
    return ExportSpec(
        module=module.eval(),
        example_input=_example(random_input),
        input_name="observation",
        output_names=names,
        metadata=meta,
        reference=lambda X: {"action": agent.predict(X, deterministic=True)},
        random_input=random_input,
        held_out=lambda X, label: (
            None if observed is None else (observed, f"{env_id} observations from greedy rollouts")
        ),
    )


for _name in ("DQN", "REINFORCE", "A2C", "PPO"):
    register_exporter(_name)(policy_spec)


# ---- the character language model: next-character log-probabilities --------------------------------
class NextCharacter(nn.Module):
    """Character ids (B, T) int64 -> ``log_probs`` (B, T, V) of the next character at each step,
    from a zero state (as ``bits_per_char`` starts each stream)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(ids), dim=-1)


def charlm_spec(est, part=None) -> ExportSpec:
    from deepatlas.models.charlm import encode

    est._check_fitted()
    V = int(est.n_outputs_)
    L = min(int(est.seq_len), 32)

    def random_input(rng, n, grow=0):  # real characters only (PAD and UNK are 0 and 1)
        return rng.integers(2, V, (n, L + grow), dtype=np.int64)

    def windows_of_text(X, label):  # the run's test text, in windows of seq_len characters
        if X is None or not len(X) or not isinstance(X[0], str):
            return None
        ids = encode(str(X[0]), est._index())
        n = min((len(ids) - 1) // est.seq_len, 16)
        return (ids[: n * est.seq_len].reshape(n, est.seq_len), f"{label}, {n} windows") if n else None

    device = next(est.module_.parameters()).device

    def reference(ids):  # no public per-step method: the estimator's network, on its device
        est.module_.eval()
        with torch.no_grad():
            return {"log_probs": torch.log_softmax(est.module_(torch.as_tensor(ids, device=device)), -1).cpu().numpy()}

    return ExportSpec(
        module=NextCharacter(_cpu(est.module_)).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("log_probs",),
        dynamic_axes={0: "batch", 1: "time"},
        metadata={"kind": "language_model", "vocabulary": ["<pad>", "<unk>", *est.vocabulary_], "state": "zero"},
        reference=reference,
        random_input=random_input,
        held_out=windows_of_text,
    )


register_exporter("CharLM")(charlm_spec)


# ---- the character-level text classifier: packed sequences as static ops ---------------------------
class LengthAwareRecurrent(nn.Module):
    """A fused RNN/GRU/LSTM stack read over each sequence's real length without packing, so that
    it exports: every layer and direction becomes a one-direction fused module. The forward
    direction reads left-aligned sequences as they are; the backward one reads each sequence
    reversed within its length (``reverse_padded``). Padded steps come after the real ones in
    both, so they never reach a real step's output; ``last`` takes the output at step length - 1.
    (B, T, F), lengths (B,) -> last (B, D*H), as ``RecurrentEncoder`` with packing returns."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.num_layers, self.bidirectional = rnn.num_layers, rnn.bidirectional
        kind = type(rnn)
        extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
        self.cells = nn.ModuleList()
        for layer in range(rnn.num_layers):
            for suffix in ("", "_reverse") if rnn.bidirectional else ("",):
                W_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
                cell = kind(W_ih.shape[1], rnn.hidden_size, batch_first=True, bias=rnn.bias, **extra)
                with torch.no_grad():
                    for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ()):
                        getattr(cell, f"{name}_l0").copy_(getattr(rnn, f"{name}_l{layer}{suffix}"))
                self.cells.append(cell)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from deepatlas.models.rnn_cells import reverse_padded

        index = (lengths - 1).view(-1, 1, 1)  # (B, 1, 1): each sequence's last real step
        D = 2 if self.bidirectional else 1
        lasts: list[torch.Tensor] = []
        for layer in range(self.num_layers):
            outs, lasts = [], []
            for d in range(D):
                seq = x if d == 0 else reverse_padded(x, lengths)
                out = self.cells[layer * D + d](seq)[0]  # (B, T, H)
                lasts.append(out.gather(1, index.expand(-1, 1, out.shape[2])).squeeze(1))  # (B, H)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
            x = torch.cat(outs, dim=2)  # (B, T, D*H)
        return torch.cat(lasts, dim=1)  # (B, D*H)


class TextLogits(nn.Module):
    """Character ids (B, L) int64, 0-padded on the right -> (logits, probabilities) (B, K)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.embed, self.head = net.embed, net.head
        rnn = net.encoder.rnn
        self.peephole = not isinstance(rnn, nn.RNNBase)
        self.encoder = net.encoder if self.peephole else LengthAwareRecurrent(rnn)

    def forward(self, ids: torch.Tensor):
        lengths = (ids != 0).sum(1).clamp(min=1)  # (B,): an empty document reads one padding step
        x = self.embed(ids)  # (B, L, E)
        last = self.encoder(x, lengths)[1] if self.peephole else self.encoder(x, lengths)
        logits = self.head(last)  # (B, K)
        return logits, torch.softmax(logits, dim=1)


def text_classifier_spec(est, part=None) -> ExportSpec:
    est._check_fitted()
    L, V = int(est.length_), len(est.vocabulary_) + 2
    unknown = next(chr(c) for c in range(0x2400, 0x2500) if chr(c) not in est.vocabulary_)  # reads as UNK

    def random_input(rng, n):  # documents of random lengths, PAD (0) after each one's end
        ids = rng.integers(1, V, (n, L), dtype=np.int64)
        return np.where(np.arange(L) < rng.integers(1, L + 1, (n, 1)), ids, 0)

    def documents(ids) -> list[str]:  # the inverse of the estimator's encoding
        chars = [unknown, *est.vocabulary_]
        return ["".join(chars[i - 1] for i in row[: int((row != 0).sum())]) for row in np.asarray(ids)]

    def encoded(X, label):
        return None if X is None else (est._encode_docs(est._documents(X)), f"{label}, encoded")

    return ExportSpec(
        module=TextLogits(_cpu(est.module_)).eval(),
        example_input=torch.from_numpy(random_input(np.random.default_rng(0), 4)),
        input_name="ids",
        output_names=("logits", "probabilities"),
        metadata={
            "kind": "classifier",
            "classes": est.classes_.tolist(),
            "decision": "argmax",
            "vocabulary": ["<pad>", "<unk>", *est.vocabulary_],
            "input": f"character ids, left-aligned, 0-padded to {L} (longer documents: the first {L})",
        },
        reference=lambda ids: {"probabilities": est.predict_proba(documents(ids))},
        random_input=random_input,
        held_out=encoded,
    )


register_exporter("TextClassifier")(text_classifier_spec)
