"""One artificial neuron, and a multi-layer perceptron, for two input features.

The neuron is exactly the talk's: it multiplies speed, size and a constant 10 by three weights,
adds them up and fires (says "unicorn") when the sum is above zero. It learns with Rosenblatt's
perceptron rule: after each mistake, nudge the weights towards the right answer.

The MLP stacks layers of such neurons with a smooth activation in between and learns all its
weights at once by gradient descent on the cross-entropy loss.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ["step", "sigmoid", "tanh", "relu"]
BIAS_INPUT = 10.0  # the talk's constant third input
TALK_WEIGHTS = (1.0, 1.0, -1.0)  # speed + size - 10 > 0  ->  unicorn


class Perceptron(nn.Module):
    """inputs (speed, size, 10) . weights (w_speed, w_size, w_bias) > 0  ->  unicorn."""

    def __init__(self, weights: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weights, dtype=torch.float32), requires_grad=False)

    @staticmethod
    def with_bias_input(x: torch.Tensor) -> torch.Tensor:
        """(N, 2) features -> (N, 3) with the constant 10 appended."""
        return torch.cat([x, torch.full_like(x[:, :1], BIAS_INPUT)], dim=1)

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
    # Features in [0, 10] are centred and scaled to about [-1, 1] before the first layer.
    feature_centre: float = 5.0
    feature_scale: float = 5.0


class MLP(nn.Module):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        widths = [2] + [config.neurons] * config.hidden_layers + [1]
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2) raw features -> (N,) logits of P(unicorn)."""
        h = (x - self.config.feature_centre) / self.config.feature_scale
        for layer in self.layers[:-1]:
            h = activate(layer(h), self.config.activation)
            if self.training and self.config.dropout > 0:
                # Inverted dropout: switch off a random share of neurons, scale the rest to keep the sum.
                keep = torch.rand(h.shape, generator=self.generator) >= self.config.dropout
                h = h * keep / (1 - self.config.dropout)
        return self.layers[-1](h).squeeze(-1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(x))

    def l2_penalty(self) -> torch.Tensor:
        """Sum of squared weights (biases excluded): what L2 regularisation adds to the loss."""
        return sum((layer.weight**2).sum() for layer in self.layers)


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
) -> None:
    """`epochs` passes over the training animals x (N, 2), y (N,): the perceptron rule (in an order drawn from
    `generator`), or for an MLP full-batch gradient steps on cross-entropy plus l2 times the weights' squared size."""
    if isinstance(model, Perceptron):
        for _ in range(epochs):
            model.perceptron_epoch(x, y, learning_rate, generator)
        return
    model.train()
    target = y.float()
    for _ in range(epochs):
        loss = F.binary_cross_entropy_with_logits(model(x), target)
        if l2 > 0:
            loss = loss + l2 * model.l2_penalty()
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
