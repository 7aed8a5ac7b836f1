"""BEGAN's losses and its proportional controller, as small pure functions (eta = 1, L1).

L(v) = mean |v - D(v)|;  L_D = L(x) - k_t L(G(z_D));  L_G = L(G(z_G));
k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1);
M_global = L(x) + |gamma L(x) - L(G(z_G))|.
All return tensors so a training loop never has to synchronise with the host.
"""

from __future__ import annotations

import torch


def autoencoder_loss(images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """L(v): mean absolute reconstruction error over the batch and all pixels."""
    return (images - reconstructions).abs().mean()


def discriminator_loss(
    loss_real: torch.Tensor, loss_fake: torch.Tensor, k: torch.Tensor
) -> torch.Tensor:
    """L_D = L(x) - k_t L(G(z_D)); ``k`` carries no gradient."""
    return loss_real - k.detach() * loss_fake


def generator_loss(loss_fake: torch.Tensor) -> torch.Tensor:
    """L_G = L(G(z_G)): the generator wants its samples reconstructed well."""
    return loss_fake


def balance(loss_real: torch.Tensor, loss_fake: torch.Tensor, gamma: float) -> torch.Tensor:
    """gamma L(x) - L(G(z)): zero at the equilibrium E[L(G(z))] = gamma E[L(x)]."""
    return gamma * loss_real.detach() - loss_fake.detach()


def update_k(
    k: torch.Tensor,
    loss_real: torch.Tensor,
    loss_fake: torch.Tensor,
    gamma: float,
    lambda_k: float,
) -> torch.Tensor:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1), as a tensor."""
    return (k + lambda_k * balance(loss_real, loss_fake, gamma)).clamp(0.0, 1.0)


def convergence_measure(
    loss_real: torch.Tensor, loss_fake: torch.Tensor, gamma: float
) -> torch.Tensor:
    """M_global = L(x) + |gamma L(x) - L(G(z_G))|: falls as training converges."""
    return loss_real.detach() + balance(loss_real, loss_fake, gamma).abs()
