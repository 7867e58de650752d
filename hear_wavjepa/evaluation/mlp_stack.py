"""A stack of G MLPs of one architecture, trained at once (the HEAR MLP protocol's batched mode).

Weights are (G, in, out) tensors trained with batched matmuls; grid point g draws its
initialisation and dropout masks from its own generators, so a stack equals training each point
alone (docs/hear-protocol.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class _Stack:
    """Weights of G same-shaped MLPs: per layer W (G, in, out) and b (G, 1, out); per hidden
    layer BatchNorm weight, bias and running statistics (G, 1, H)."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    bn_weight: list[torch.Tensor]
    bn_bias: list[torch.Tensor]
    running_mean: list[torch.Tensor]
    running_var: list[torch.Tensor]
    adam: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    step: int = 0

    def params(self) -> list[torch.Tensor]:
        return self.weights + self.biases + self.bn_weight + self.bn_bias

    def select(self, keep: torch.Tensor) -> _Stack:
        """The sub-stack of grid points `keep` (indices), Adam state included."""

        def pick(ts: list[torch.Tensor], grad: bool) -> list[torch.Tensor]:
            return [t.detach()[keep].clone().requires_grad_(grad) for t in ts]

        return _Stack(
            pick(self.weights, True),
            pick(self.biases, True),
            pick(self.bn_weight, True),
            pick(self.bn_bias, True),
            pick(self.running_mean, False),
            pick(self.running_var, False),
            {k: pick(v, False) for k, v in self.adam.items()},
            self.step,
        )

    def snapshot(self, g: int) -> dict[str, list[torch.Tensor]]:
        return {
            name: [t.detach()[g].clone() for t in getattr(self, name)]
            for name in ("weights", "biases", "bn_weight", "bn_bias", "running_mean", "running_var")
        }


def _init_layer(
    fan_in: int, fan_out: int, init: str, gain: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.nn.Linear's default init (kaiming weight, uniform bias), then heareval's xavier;
    returns W (in, out) and b (out,)."""
    weight = torch.empty(fan_out, fan_in)
    bias = torch.empty(fan_out)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    torch.nn.init.uniform_(bias, -bound, bound, generator=generator)
    _xavier(init)(weight, gain=gain, generator=generator)
    return weight.T.contiguous(), bias


def _xavier(init: str) -> Callable[..., torch.Tensor]:
    if init not in ("xavier_uniform_", "xavier_normal_"):
        raise ValueError(f"unknown initialization {init!r}")
    return getattr(torch.nn.init, init)


def _init_stack(
    confs: Sequence[dict],
    nfeatures: int,
    nlabels: int,
    generators: Sequence[torch.Generator],
    device: torch.device,
) -> _Stack:
    layers = confs[0]["hidden_layers"]
    hidden = confs[0]["hidden_dim"]
    dims = [nfeatures] + [hidden] * layers + [nlabels]
    per_point = [
        [
            _init_layer(dims[i], dims[i + 1], conf["initialization"], _gain(i), gen)
            for i in range(len(dims) - 1)
        ]
        for conf, gen in zip(confs, generators, strict=True)
    ]
    weights = [
        torch.stack([p[i][0] for p in per_point]).to(device).requires_grad_()
        for i in range(len(dims) - 1)
    ]
    biases = [
        torch.stack([p[i][1] for p in per_point])[:, None, :].to(device).requires_grad_()
        for i in range(len(dims) - 1)
    ]
    g = len(confs)

    def const(value: float, grad: bool) -> list[torch.Tensor]:
        return [
            torch.full((g, 1, hidden), value, device=device).requires_grad_(grad)
            for _ in range(layers)
        ]

    return _Stack(
        weights, biases, const(1.0, True), const(0.0, True), const(0.0, False), const(1.0, False)
    )


def _gain(layer: int) -> float:
    """heareval's xavier gain: 1 after the (linear) input, sqrt(2) after a ReLU."""
    return 1.0 if layer == 0 else math.sqrt(2.0)


def _forward(
    stack: _Stack,
    x: torch.Tensor,
    train: bool,
    dropout: float,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Logits (G, B, C) of every stacked MLP on the shared input x (B, D).

    BatchNorm runs as one fused `F.batch_norm` over the G·H channels of a (B, G·H) view; each
    point draws its dropout mask (B, H) from its own generator (uniform noise below 1 − p) into
    one (G, B, H) buffer.
    """
    h = x
    g = len(stack.weights[0])
    for i in range(len(stack.weights) - 1):
        if h.dim() == 2:
            h = h.expand(g, *h.shape)
        h = torch.baddbmm(stack.biases[i], h, stack.weights[i])
        _, b, hidden = h.shape
        if train and b < 2:
            raise ValueError(
                "a training batch of 1 item cannot be batch-normalised (BatchNorm1d, as in "
                "heareval); the training set size is 1 more than a multiple of the batch size"
            )
        flat = h.transpose(0, 1).reshape(b, g * hidden)
        flat = F.batch_norm(
            flat,
            stack.running_mean[i].view(-1),
            stack.running_var[i].view(-1),
            stack.bn_weight[i].view(-1),
            stack.bn_bias[i].view(-1),
            training=train,
            momentum=0.1,
            eps=1e-5,
        )
        h = flat.view(b, g, hidden).transpose(0, 1)
        if train and dropout > 0:
            # keep a unit where uniform noise < 1 - dropout: Bernoulli(1 - dropout), as
            # bernoulli_ draws it, but uniform draws into the buffer take half its time on CPU
            mask = torch.empty((g, b, hidden), device=h.device)
            for k, gen in enumerate(generators):
                torch.rand((b, hidden), generator=gen, device=h.device, out=mask[k])
            h = h * mask.lt_(1 - dropout).div_(1 - dropout)
        h = torch.relu(h)
    if h.dim() == 2:
        h = h.expand(g, *h.shape)
    return torch.baddbmm(stack.biases[-1], h, stack.weights[-1])


def _stack_loss(logits: torch.Tensor, y: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """Per-point mean loss (G,) of logits (G, B, C): CE on argmax(one-hot), or BCE-with-logits."""
    g, b, c = logits.shape
    if multiclass:
        target = y.argmax(dim=1).repeat(g)
        loss = F.cross_entropy(logits.reshape(g * b, c), target, reduction="none")
        return loss.view(g, b).mean(dim=1)
    target = y.expand(g, b, c)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))


def _adam_step(stack: _Stack, lr: Sequence[float]) -> None:
    """torch.optim.Adam's update (betas 0.9/0.999, eps 1e-8) with learning rate lr[g] for point
    g: torch's fused Adam kernel once per point on its slices of the stack (one pass over the
    weights instead of the nine of `_foreach` ops; 5× faster on CPU)."""
    params = stack.params()
    grads = [p.grad for p in params]
    if not stack.adam:
        stack.adam = {key: [torch.zeros_like(p) for p in params] for key in ("m", "v")}
    m, v = stack.adam["m"], stack.adam["v"]
    stack.step += 1
    steps = [torch.full((), float(stack.step), device=p.device) for p in params]
    with torch.no_grad():
        for g, rate in enumerate(lr):
            torch._fused_adam_(
                [p[g] for p in params],
                [d[g] for d in grads],
                [t[g] for t in m],
                [t[g] for t in v],
                [],
                steps,
                lr=float(rate),
                beta1=0.9,
                beta2=0.999,
                weight_decay=0.0,
                eps=1e-8,
                amsgrad=False,
                maximize=False,
            )
    for p in params:
        p.grad = None


def _predict_stack(stack: _Stack, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Eval-mode logits (G, N, C)."""
    with torch.no_grad():
        chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        return torch.cat([_forward(stack, c, False, 0.0, []) for c in chunks], dim=1)
