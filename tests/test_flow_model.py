"""The flow module: known densities, exact invertibility, sampler round trips, category routing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline_steps.common.errors import InputError
from pipeline_steps.models.flow import (
    FlowHyperparameters,
    FlowPart,
    FlowSpec,
    Sampler,
    build_flow,
    load_sampler,
)

torch.set_num_threads(1)
HP = FlowHyperparameters(n_bins=6, hidden_dim=16, n_blocks=2, activation="relu", batch_norm=False)


def _spec(n_targets: int = 3, n_conditions: int = 2) -> FlowSpec:
    targets = [f"t{i}" for i in range(n_targets)]
    return FlowSpec(conditions=[f"c{i}" for i in range(n_conditions)], targets=targets, hyperparameters=HP,
                    parts=[FlowPart(None, None, targets)])


def _ship_spec() -> FlowSpec:
    """SHiP-like: categories 1-2 have StartX = StartY = 0 (not modelled), 3-4 model everything."""
    targets = ["StartX", "StartY", "StartZ", "Px"]
    parts = [FlowPart(k, float(k), targets[2:], {"StartX": 0.0, "StartY": 0.0}) for k in (1, 2)]
    parts += [FlowPart(k, float(k), targets) for k in (3, 4)]
    return FlowSpec(conditions=["category"], targets=targets, hyperparameters=HP, parts=parts, split_by="category")


def _randomised(spec: FlowSpec, seed: int = 0, scale: float = 0.1):
    """A flow far from the identity (the zero-initialised output layers are perturbed too)."""
    torch.manual_seed(seed)
    model = build_flow(spec)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
    return model.eval()


def _gaussian_log_prob(x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1)


def test_untrained_flow_is_the_standard_gaussian():
    torch.manual_seed(1)
    model = build_flow(_spec())
    targets, conditions = 2.0 * torch.randn(64, 3), torch.randn(64, 2)
    torch.testing.assert_close(model.log_prob(targets, conditions), _gaussian_log_prob(targets), atol=1e-5, rtol=0)


def test_untrained_categorised_flow_counts_only_modelled_targets():
    torch.manual_seed(1)
    model = build_flow(_ship_spec())
    targets = torch.randn(8, 4)
    conditions = torch.tensor([[1.0], [2.0], [3.0], [4.0]] * 2)
    expected = torch.where(conditions[:, 0] <= 2, _gaussian_log_prob(targets[:, 2:]), _gaussian_log_prob(targets))
    torch.testing.assert_close(model.log_prob(targets, conditions), expected, atol=1e-5, rtol=0)


def test_forward_then_inverse_recovers_the_input():
    model = _randomised(_spec(n_targets=5))
    x, c = 1.5 * torch.randn(256, 5), torch.randn(256, 2)
    with torch.no_grad():
        transform = model.flows["all"](c).transform
        z = transform(x)
        assert not torch.allclose(z, x, atol=1e-2)  # the flow really transforms
        torch.testing.assert_close(transform.inv(z), x, atol=1e-4, rtol=0)


def test_inverse_is_exact_up_to_rounding_even_for_steep_splines():
    """float64 with large random spline parameters: float32 errors above come from rounding only."""
    model = _randomised(_spec(n_targets=5), scale=0.3).double()
    x, c = 1.5 * torch.randn(256, 5, dtype=torch.float64), torch.randn(256, 2, dtype=torch.float64)
    with torch.no_grad():
        transform = model.flows["all"](c).transform
        torch.testing.assert_close(transform.inv(transform(x)), x, atol=1e-9, rtol=0)


def test_sample_then_log_prob_matches_the_change_of_variables():
    """log p(x) = log N(z) + log|det dz/dx| with the Jacobian taken numerically by autograd."""
    model = _randomised(_spec(n_targets=3, n_conditions=1))
    c = torch.randn(6, 1)
    x = model.sample(c, torch.Generator().manual_seed(3)).detach()
    log_prob = model.log_prob(x, c).detach()
    for row in range(len(x)):
        transform = model.flows["all"](c[row:row + 1]).transform
        jacobian = torch.autograd.functional.jacobian(lambda v: transform(v[None])[0], x[row])
        z = transform(x[row:row + 1])[0].detach()
        expected = _gaussian_log_prob(z) + torch.linalg.slogdet(jacobian).logabsdet
        assert abs(float(log_prob[row] - expected)) < 1e-4


def test_sample_draws_noise_from_the_seeded_generator():
    model = _randomised(_spec(n_targets=3))
    c = torch.randn(50, 2)
    x = model.sample(c, torch.Generator().manual_seed(7)).detach()
    z = torch.randn(50, 3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(model.flows["all"](c).transform(x).detach(), z, atol=1e-4, rtol=0)


def test_one_dimensional_flow_without_context_is_invertible():
    model = _randomised(FlowSpec(conditions=["category"], targets=["a"], hyperparameters=HP, split_by="category",
                                 parts=[FlowPart(3, 3.0, ["a"])]))
    c = torch.full((20, 1), 3.0)
    x = model.sample(c, torch.Generator().manual_seed(0)).detach()
    assert torch.isfinite(model.log_prob(x, c)).all()
    assert x.std() > 0.1


def _save(model, folder):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "model.json").write_text(model.spec.to_json())


def test_load_sampler_reproduces_the_model_and_fills_unmodelled_targets(tmp_path):
    model = _randomised(_ship_spec())
    _save(model, tmp_path / "train")
    sampler = load_sampler(tmp_path / "train", device="cpu")
    assert isinstance(sampler, Sampler) and sampler.targets == ["StartX", "StartY", "StartZ", "Px"]
    conditions = np.repeat(np.array([[1.0], [2.0], [3.0], [4.0]], np.float32), 100, axis=0)
    first, again = sampler.sample(conditions, seed=11), sampler.sample(conditions, seed=11)
    assert first.dtype == np.float32 and first.shape == (400, 4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, sampler.sample(conditions, seed=12))
    np.testing.assert_array_equal(first[:200, :2], 0.0)  # categories 1-2: StartX = StartY = 0 exactly
    assert (first[200:, :2].std(axis=0) > 0.1).all()
    with torch.no_grad():
        expected = model.log_prob(torch.from_numpy(first), torch.from_numpy(conditions)).numpy()
    np.testing.assert_allclose(sampler.log_prob(first, conditions), expected, atol=1e-5)


def test_sampler_batches_give_the_same_rows_as_one_batch(tmp_path):
    _save(_randomised(_spec()), tmp_path)
    sampler = load_sampler(tmp_path, device="cpu")
    conditions = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    targets = sampler.sample(conditions, seed=1)
    sampler.batch_size = 64
    np.testing.assert_allclose(sampler.log_prob(targets, conditions), load_sampler(tmp_path, "cpu").log_prob(targets, conditions), atol=1e-5)


def test_unknown_category_is_refused_with_the_known_values(tmp_path):
    _save(_randomised(_ship_spec()), tmp_path)
    with pytest.raises(InputError, match=r"category.*\[5\.0\].*1\.0"):
        load_sampler(tmp_path, device="cpu").sample(np.array([[5.0]], np.float32), seed=0)


def test_wrong_condition_width_and_missing_files_are_explained(tmp_path):
    with pytest.raises(InputError, match="model.json is missing"):
        load_sampler(tmp_path)
    _save(_randomised(_spec()), tmp_path)
    with pytest.raises(InputError, match=r"shape \[n, 2\]"):
        load_sampler(tmp_path, device="cpu").sample(np.zeros((3, 5), np.float32), seed=0)


def test_model_json_round_trips(tmp_path):
    spec = _ship_spec()
    assert FlowSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["kind"] == "flow"


# log_prob of _spec()'s flow with every parameter drawn by _fixed_flow, at _fixed_points(), computed with
# zuko 1.6 and torch 2.13 (float64). A checkpoint stores weights, not the function they parametrise: what
# turns weights into a density (the spline's minimum slope and bound, the couplings' masks, the permutations,
# the conditioner's layout) must not move with the installed zuko or torch, or every stored model silently
# becomes another one. zuko's default minimum slope did (1e-4 up to 1.4, 1e-3 since 1.5): with it, these
# values moved by 0.03-0.41, which is what this test is for.
REFERENCE_LOG_PROB = [-8.488006346608046, -6.260282644108362, -12.30056526334561, -6.88762361935015,
                      -9.942194225568615, -2.6980012874009582]


def _fixed_flow(spec: FlowSpec):
    """The flow in float64 with its parameters from numpy's generator: independent of torch's RNG and init."""
    model = build_flow(spec).double().eval()
    generator = np.random.default_rng(2026)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.from_numpy(0.3 * generator.standard_normal(tuple(parameter.shape))))
    return model


def _fixed_points() -> tuple[torch.Tensor, torch.Tensor]:
    generator = np.random.default_rng(7)
    targets = torch.from_numpy(1.5 * generator.standard_normal((6, 3)))
    return targets, torch.from_numpy(generator.standard_normal((6, 2)))


def test_stored_weights_mean_the_same_density_as_when_the_reference_was_taken():
    """Error analysis of the tolerance: float64 (eps 2.2e-16); each value is a sum of ~10 terms, each the end
    of ~100 operations whose rounding the spline's slopes (at most 1 / MIN_SLOPE = 1e3) amplify: at most
    ~1e3 * 100 * 10 * 2.2e-16 = 2e-10. ATen's baseline, AVX2 and AVX-512 kernels differ by 7e-15 here. So 1e-9
    holds on any CPU, while a change of the function moves the values by far more (see above)."""
    targets, conditions = _fixed_points()
    with torch.no_grad():
        found = _fixed_flow(_spec()).log_prob(targets, conditions)
    torch.testing.assert_close(found, torch.tensor(REFERENCE_LOG_PROB, dtype=torch.float64), rtol=0, atol=1e-9)
