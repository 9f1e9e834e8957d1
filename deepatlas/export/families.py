"""Inference modules for the families beyond the spine, registered by class name (the sequence
and text families are in :mod:`deepatlas.export.sequences`).

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
RL agents            observation -> greedy ``action`` (and    ``predict(obs, deterministic=True)``
                     ``q_values`` / ``logits``)
===================  ======================================  =====================================

References: Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural
networks"; Kingma & Welling (2014), "Auto-encoding variational Bayes"; Goodfellow et al. (2014),
"Generative adversarial nets"; Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep
belief nets"; Gregor & LeCun (2010), "Learning fast approximations of sparse coding"; Mnih et
al. (2015), "Human-level control through deep reinforcement learning".
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.export.builtin import _preprocessing, supervised_spec
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
        meta["preprocessing"] = _preprocessing(est)
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
        meta["preprocessing"] = _preprocessing(est)

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
