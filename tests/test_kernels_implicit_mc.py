"""Implicit NTK-vector products equal the explicit kernel times the vector; the Monte-Carlo kernel estimate
averages the right per-network quantities, is unbiased where the finite-width expectation is exact, and converges
to the analytic kernels of ``kernels.mlp`` with width."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from learnmech.kernels import empirical_ntk, mlp, monte_carlo_kernel_fn, ntk_vector_product
from learnmech.kernels.empirical import mlp_network, sample_seeds

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _inputs(n: int, *shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _cnn(outputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.LayerNorm(18),
                         nn.Linear(18, outputs)).double()


@pytest.mark.parametrize("cross", [False, True])
def test_full_mode_product_equals_explicit_kernel(cross: bool) -> None:
    model = _cnn(3)
    x1, x2 = _inputs(7, 2, 6), (_inputs(5, 2, 6, seed=1) if cross else None)
    n2 = 5 if cross else 7
    v = np.random.default_rng(0).standard_normal((n2, 3))
    kernel = empirical_ntk(model, x1, x2, mode="full")  # (n1, n2, k, k)
    product = ntk_vector_product(model, x1, v, x2, batch_size=3)  # several chunks on both sides
    assert isinstance(product, np.ndarray) and product.shape == (7, 3)
    expected = np.einsum("ijab,jb->ia", kernel, v)
    np.testing.assert_allclose(product, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_trace_mode_product_equals_explicit_kernel_for_several_vectors() -> None:
    model = _cnn(4)
    x1, x2 = _inputs(6, 2, 6), _inputs(4, 2, 6, seed=2)
    columns = np.random.default_rng(1).standard_normal((4, 3))
    kernel = empirical_ntk(model, x1, x2)  # (n1, n2), mean over the 4 logits
    product = ntk_vector_product(model, x1, columns, x2, mode="trace", batch_size=4)
    assert product.shape == (6, 3)
    np.testing.assert_allclose(product, kernel @ columns, rtol=0, atol=1e-12 * np.abs(kernel @ columns).max())
    single = ntk_vector_product(model, x1, columns[:, 0], x2, mode="trace")
    assert single.shape == (6,)
    np.testing.assert_allclose(single, product[:, 0], atol=1e-12 * np.abs(product).max())


def test_scalar_output_vector_and_tensor_in_tensor_out() -> None:
    net = mlp_network(3, 2, 16, "erf", W_std=1.3, b_std=0.2, seed=3)
    net[0].linear.weight.requires_grad_(False)  # frozen parameters are not part of the kernel
    x = _inputs(5, 3)
    v = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    product = ntk_vector_product(net, x, v)
    assert isinstance(product, torch.Tensor) and product.shape == (5,)
    kernel = empirical_ntk(net, x)
    np.testing.assert_allclose(product.numpy(), kernel @ v.numpy(), atol=1e-12 * np.abs(kernel).max())
    np.testing.assert_allclose(ntk_vector_product(net, x, v[:, None]).numpy()[:, 0], product.numpy(), atol=1e-14)
    # float32 on request, still the same product to single precision
    p32 = ntk_vector_product(net, x, v, dtype="float32")
    assert p32.dtype == torch.float32
    np.testing.assert_allclose(p32.numpy(), product.numpy(), rtol=1e-5, atol=1e-5 * np.abs(product.numpy()).max())


class _NotVmappable(nn.Module):
    """Python control flow on a tensor value: torch.func.vmap refuses it, the product falls back to a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 2).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.layer(x))
        return 2 * y if float(y.detach().sum()) > 1e9 else y


def test_modules_that_vmap_refuses_fall_back_to_a_loop() -> None:
    model = _NotVmappable()
    x = _inputs(4, 3)
    v = np.random.default_rng(2).standard_normal((4, 2))
    kernel = empirical_ntk(model, x, mode="full", implementation="jacobian")
    np.testing.assert_allclose(ntk_vector_product(model, x, v), np.einsum("ijab,jb->ia", kernel, v), atol=1e-13)
    trace = empirical_ntk(model, x, implementation="jacobian")
    np.testing.assert_allclose(ntk_vector_product(model, x, v, mode="trace"), trace @ v, atol=1e-13)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(v=np.zeros(4)), "v"),
        (dict(v=np.zeros((5, 2))), "v"),
        (dict(v=np.array([np.nan, 0, 0, 0, 0])), "v"),
        (dict(mode="diag"), "mode"),
        (dict(x2=np.zeros((5, 4))), "x2"),
        (dict(x1=np.zeros((5, 7))), "x1"),
        (dict(batch_size=0), "batch_size"),
        (dict(model="net"), "model"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, match: str) -> None:
    args = dict(model=nn.Linear(3, 1).double(), x1=np.zeros((5, 3)), v=np.zeros(5))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ntk_vector_product(args.pop("model"), args.pop("x1"), args.pop("v"), **args)


def test_monte_carlo_is_the_mean_of_per_network_kernels() -> None:
    x1, x2 = _inputs(4, 3), _inputs(3, 3, seed=1)
    built: list[int] = []

    def module_fn(seed: int) -> nn.Module:
        built.append(seed)
        return mlp_network(3, 1, 8, "tanh", W_std=1.2, b_std=0.3, out_features=2, seed=seed)

    estimate = monte_carlo_kernel_fn(module_fn, x1, x2, n_samples=3, seed=7)
    assert built == sample_seeds(7, 3) and len(set(built)) == 3
    assert sample_seeds(7, 5)[:3] == built  # more samples extend the same sequence
    nets = [module_fn(s) for s in list(built)]
    with torch.no_grad():
        nngp = np.mean([(net(x1) @ net(x2).T / 2).numpy() for net in nets], axis=0)
    ntk = np.mean([empirical_ntk(net, x1, x2) for net in nets], axis=0)
    assert estimate.nngp.shape == estimate.ntk.shape == (4, 3)
    np.testing.assert_allclose(estimate.nngp, nngp, atol=1e-14)
    np.testing.assert_allclose(estimate.ntk, ntk, atol=1e-13)
    sym = monte_carlo_kernel_fn(module_fn, x1, n_samples=2)
    np.testing.assert_allclose(sym.ntk, sym.ntk.T, atol=1e-13)
    np.testing.assert_allclose(sym.nngp, sym.nngp.T, atol=1e-14)


def test_monte_carlo_is_unbiased_for_one_hidden_layer() -> None:
    # With one hidden layer the pre-activations are exactly Gaussian at any width, so E[f f'] and E[Theta] equal
    # the infinite-width NNGP/NTK exactly (Neal 1996; Jacot et al. 2018, eq. 4 term by term): the estimate must be
    # within the Monte-Carlo error. Per entry, z = (mean - analytic) / se with se from the 400 samples; the 30
    # entries (15 per kernel) are judged at family-wise level 1e-3 (Bonferroni, t quantile with 399 dof).
    x = _inputs(5, 4)
    samples = 400
    seeds = sample_seeds(0, samples)
    nets = [mlp_network(4, 1, 32, "relu", W_std=1.4, b_std=0.1, seed=s) for s in seeds]
    with torch.no_grad():
        nngp_each = np.array([(net(x) @ net(x).T).numpy() for net in nets])
    ntk_each = np.array([empirical_ntk(net, x) for net in nets])
    estimate = monte_carlo_kernel_fn(lambda s: mlp_network(4, 1, 32, "relu", W_std=1.4, b_std=0.1, seed=s), x,
                                     n_samples=samples)
    np.testing.assert_allclose(estimate.nngp, nngp_each.mean(0), atol=1e-13)
    np.testing.assert_allclose(estimate.ntk, ntk_each.mean(0), atol=1e-12)
    exact = mlp(1, "relu", 1.4, 0.1)(x.numpy())
    limit = stats.t.ppf(1 - 1e-3 / (2 * 30), samples - 1)
    upper = np.triu_indices(5)
    for each, mean, target in ((nngp_each, estimate.nngp, exact.nngp), (ntk_each, estimate.ntk, exact.ntk)):
        se = each.std(0, ddof=1) / np.sqrt(samples)
        z = ((mean - target) / se)[upper]
        assert np.abs(z).max() < limit, z


def test_monte_carlo_ntk_converges_to_the_analytic_kernel_with_width() -> None:
    # Two hidden layers: the empirical NTK fluctuates ~ width^-1/2 around its limit (Jacot et al. 2018, thm. 1;
    # Hanin & Nica 2019), so at equal n_samples the relative error from width 16 to 1024 must shrink at least
    # like sqrt(16/1024) = 1/8, up to a factor 2 for the sampling noise of the two estimates.
    x = _inputs(5, 4, seed=3)
    exact = mlp(2, "relu", 1.4, 0.1)(x.numpy()).ntk
    errors = []
    for width in (16, 1024):
        estimate = monte_carlo_kernel_fn(
            lambda s, w=width: mlp_network(4, 2, w, "relu", W_std=1.4, b_std=0.1, seed=s), x, n_samples=8)
        errors.append(np.linalg.norm(estimate.ntk - exact) / np.linalg.norm(exact))
    assert errors[1] < 2 * errors[0] * np.sqrt(16 / 1024), errors


def test_monte_carlo_bad_input() -> None:
    x = _inputs(3, 2)
    with pytest.raises(ValueError, match="module_fn"):
        monte_carlo_kernel_fn("not callable", x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module_fn"):
        monte_carlo_kernel_fn(lambda s: 3, x)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="n_samples"):
        monte_carlo_kernel_fn(lambda s: mlp_network(2, 1, 4, seed=s), x, n_samples=0)
    with pytest.raises(ValueError, match="seed"):
        monte_carlo_kernel_fn(lambda s: mlp_network(2, 1, 4, seed=s), x, seed=-1)


@CUDA
def test_implicit_product_and_monte_carlo_on_cuda_equal_cpu() -> None:
    model = _cnn(3)
    x1, x2 = _inputs(6, 2, 6), _inputs(4, 2, 6, seed=1)
    v = torch.randn((4, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cpu = ntk_vector_product(model, x1, v, x2)
    gpu = ntk_vector_product(model.cuda(), x1, v.cuda(), x2.cuda())
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-12 * cpu.abs().max().item())

    def module_fn(seed: int, device: str = "cpu") -> nn.Module:
        return mlp_network(4, 2, 64, "gelu", W_std=1.2, b_std=0.2, seed=seed, device=device)

    x = _inputs(5, 4)
    on_cpu = monte_carlo_kernel_fn(module_fn, x, n_samples=3)
    on_gpu = monte_carlo_kernel_fn(lambda s: module_fn(s, "cuda"), x, n_samples=3)
    np.testing.assert_allclose(on_gpu.ntk, on_cpu.ntk, atol=1e-10 * np.abs(on_cpu.ntk).max())
    np.testing.assert_allclose(on_gpu.nngp, on_cpu.nngp, atol=1e-10 * np.abs(on_cpu.nngp).max())
