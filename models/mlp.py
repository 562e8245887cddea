"""One artificial neuron, and a multi-layer perceptron, for two input features.

The neuron is exactly the talk's: it multiplies speed, size and a constant 10 by three weights,
adds them up and fires (says "unicorn") when the sum is above zero. It learns with Rosenblatt's
perceptron rule: after each mistake, nudge the weights towards the right answer.

The MLP stacks layers of such neurons with a smooth activation in between and learns all its
weights at once by gradient descent on the cross-entropy loss.

Both can also read engineered inputs, as TensorFlow Playground offers them: speed², size², speed·size
and sines, each measured from the centre of the plane (5, 5). With speed² and size² a single neuron
can draw a circle, because a circle is a straight line in those features.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ["step", "sigmoid", "tanh", "relu"]
BIAS_INPUT = 10.0  # the talk's constant third input
TALK_WEIGHTS = (1.0, 1.0, -1.0)  # speed + size - 10 > 0  ->  unicorn
ENGINEERED = ("speed²", "size²", "speed·size", "sin(speed)", "sin(size)")
CENTRE, HALF_WIDTH = 5.0, 5.0  # features live in [0, 10]: centred and scaled, u = (speed - 5) / 5 is in [-1, 1]


def centred(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) speed, size in [0, 10] -> (N, 2) u, v in [-1, 1]."""
    return (x - CENTRE) / HALF_WIDTH


def engineered_columns(x: torch.Tensor, extras: tuple[str, ...]) -> torch.Tensor:
    """(N, 2) speed, size -> (N, len(extras)) engineered inputs in [-1, 1], from u, v = centred(x):
    speed² = u², size² = v², speed·size = u·v, sin(speed) = sin(pi·u), sin(size) = sin(pi·v)."""
    u, v = centred(x).unbind(1)
    make = {"speed²": lambda: u * u, "size²": lambda: v * v, "speed·size": lambda: u * v}
    make |= {"sin(speed)": lambda: torch.sin(math.pi * u), "sin(size)": lambda: torch.sin(math.pi * v)}
    unknown = [name for name in extras if name not in make]
    if unknown:
        raise ValueError(f"unknown engineered inputs {unknown}; choose from {ENGINEERED}")
    return torch.stack([make[name]() for name in extras], 1) if extras else x[:, :0]


def input_names(extras: tuple[str, ...]) -> tuple[str, ...]:
    return ("speed", "size", *extras)


class Perceptron(nn.Module):
    """inputs (speed, size, [extras x 10], 10) . weights (w_speed, w_size, [w_extra...], w_bias) > 0  ->  unicorn.

    Engineered inputs are scaled by 10, to the same range as speed and size, so the perceptron rule moves every
    weight at the same pace."""

    def __init__(self, weights: tuple[float, ...] | None = None, extras: tuple[str, ...] = ()):
        super().__init__()
        self.extras = tuple(extras)
        weights = (0.0,) * (3 + len(self.extras)) if weights is None else tuple(weights)
        if len(weights) == 3 and self.extras:  # (speed, size, bias) given: the extras start at zero
            weights = (weights[0], weights[1], *([0.0] * len(self.extras)), weights[2])
        self.weight = nn.Parameter(torch.tensor(weights, dtype=torch.float32), requires_grad=False)

    def with_bias_input(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2) features -> (N, 3 + extras): speed, size, the engineered inputs x 10, and the constant 10."""
        extra = BIAS_INPUT * engineered_columns(x, self.extras)
        return torch.cat([x, extra, torch.full_like(x[:, :1], BIAS_INPUT)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2) -> (N,) weighted sums; positive means unicorn."""
        return self.with_bias_input(x) @ self.weight

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """A step neuron is certain: P(unicorn) is exactly 0 or 1."""
        return (self(x) > 0).float()

    @torch.no_grad()
    def perceptron_epoch(self, x: torch.Tensor, y: torch.Tensor, lr: float, generator: torch.Generator) -> None:
        """One pass of the perceptron rule in a seeded random order: w += lr * (target - output) * input."""
        inputs = self.with_bias_input(x)
        for i in torch.randperm(len(x), generator=generator).tolist():
            fired = float(inputs[i] @ self.weight > 0)
            self.weight += lr * (float(y[i]) - fired) * inputs[i]


class StepSTE(torch.autograd.Function):
    """Step activation with a straight-through gradient: forward is 0/1, backward pretends it was a
    sigmoid (a step's true gradient is zero everywhere, so nothing could learn through it)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad_out * s * (1 - s)


def activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "step":
        return StepSTE.apply(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "relu":
        return F.relu(x)
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


@dataclass
class MLPConfig:
    hidden_layers: int = 2  # 0 = logistic regression, one neuron on the inputs
    neurons: int = 8  # per hidden layer
    activation: str = "tanh"
    dropout: float = 0.0  # chance each hidden neuron is switched off in a training step
    extras: tuple[str, ...] = ()  # engineered inputs (names from ENGINEERED) beside speed and size


class MLP(nn.Module):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        widths = [2 + len(config.extras)] + [config.neurons] * config.hidden_layers + [1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.generator: torch.Generator | None = None  # dropout masks come from here when set (repeatable runs)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default Linear init (uniform in +-1/sqrt(fan_in)), drawn from `generator` so a seed
        gives the same network even while other threads use torch's global random state."""
        for layer in self.layers:
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2) speed, size in [0, 10] -> (N, 2 + extras): what the first layer reads, each in [-1, 1]."""
        return torch.cat([centred(x), engineered_columns(x, self.config.extras)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2) raw features -> (N,) logits of P(unicorn)."""
        return self.layer_outputs(x)[-1].squeeze(-1)

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 2) raw features -> [inputs (N, 2 + extras), each hidden layer's activations (N, neurons)..., logits (N, 1)]."""
        h = self.inputs(x)
        outputs = [h]
        for layer in self.layers[:-1]:
            h = activate(layer(h), self.config.activation)
            if self.training and self.config.dropout > 0:
                # Inverted dropout: switch off a random share of neurons, scale the rest to keep the sum.
                keep = torch.rand(h.shape, generator=self.generator) >= self.config.dropout
                h = h * keep / (1 - self.config.dropout)
            outputs.append(h)
        outputs.append(self.layers[-1](h))
        return outputs

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(x))

    def l2_penalty(self) -> torch.Tensor:
        """Sum of squared weights (biases excluded): what L2 regularisation adds to the loss."""
        return sum((layer.weight**2).sum() for layer in self.layers)

    def l1_penalty(self) -> torch.Tensor:
        """Sum of absolute weights (biases excluded): L1 regularisation, which drives unneeded weights to exactly 0."""
        return sum(layer.weight.abs().sum() for layer in self.layers)


@torch.no_grad()
def neuron_maps(model: "Perceptron | MLP", points: torch.Tensor) -> list[torch.Tensor]:
    """What every neuron computes at `points` (P, 2) of the speed x size plane: [inputs (P, n_inputs), each hidden
    layer's activations (P, neurons)..., output P(unicorn) (P, 1)]. The input columns are what the model reads
    (centred for the MLP; speed, size and the engineered inputs x 10 for the perceptron); dropout is off."""
    model.eval()
    if isinstance(model, Perceptron):
        inputs = model.with_bias_input(points)[:, :-1]
        return [inputs, model.predict_proba(points)[:, None]]
    outputs = model.layer_outputs(points)
    return [*outputs[:-1], torch.sigmoid(outputs[-1])]


def train_epochs(
    model: Perceptron | MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    *,
    learning_rate: float,
    l2: float,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer | None,
    l1: float = 0.0,
    batch_size: int = 0,
) -> None:
    """`epochs` passes over the training animals x (N, 2), y (N,): the perceptron rule (in an order drawn from
    `generator`), or for an MLP gradient steps on cross-entropy plus l2 times the weights' squared size plus l1 times
    their absolute size. batch_size 0 (or >= N) takes one full-batch step per epoch; otherwise each epoch visits every
    animal once in mini-batches of that size, in an order drawn from `generator`."""
    if isinstance(model, Perceptron):
        for _ in range(epochs):
            model.perceptron_epoch(x, y, learning_rate, generator)
        return
    model.train()
    target = y.float()
    full = batch_size <= 0 or batch_size >= len(x)
    for _ in range(epochs):
        batches = [slice(None)] if full else torch.randperm(len(x), generator=generator).split(batch_size)
        for rows in batches:
            loss = F.binary_cross_entropy_with_logits(model(x[rows]), target[rows])
            if l2 > 0:
                loss = loss + l2 * model.l2_penalty()
            if l1 > 0:
                loss = loss + l1 * model.l1_penalty()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()


@torch.no_grad()
def loss_and_accuracy(model: Perceptron | MLP, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) on animals x (N, 2), y (N,). Loss is cross-entropy for an MLP; for the step neuron it is the
    error rate, since a neuron that only says 0 or 1 has no probabilities to score."""
    model.eval()
    if isinstance(model, Perceptron):
        wrong = float(((model(x) > 0).long() != y).float().mean())
        return wrong, 1.0 - wrong
    logits = model(x)
    if not torch.isfinite(logits).all():
        return float("nan"), float(((torch.nan_to_num(logits) > 0).long() == y).float().mean())
    loss = float(F.binary_cross_entropy_with_logits(logits, y.float()))
    return loss, float(((logits > 0).long() == y).float().mean())
