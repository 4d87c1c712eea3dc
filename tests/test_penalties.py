"""D penalties: hand-checked values, options, and their place in the D update."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import augment, branching, penalties
from test_step import tiny

W = jnp.array([0.6, 0.0, 0.0])  # ||w|| = 0.6
X = jnp.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.5]])  # norms 3 and 0.5
KEY = jax.random.PRNGKey(0)


def linear(x):
  return x @ W  # grad_x = w everywhere


def quadratic(x):
  return 0.5 * jnp.sum(jnp.square(x), axis=1)  # grad_x = x


def test_values_on_a_linear_critic():
  p = penalties.PENALTIES.get
  np.testing.assert_allclose(p("wgan_gp")(linear, X, -X, KEY), (0.6 - 1) ** 2, rtol=1e-5)
  np.testing.assert_allclose(p("wgan_gp")(linear, X, -X, KEY, one_sided=True), 0.0, atol=1e-7)
  np.testing.assert_allclose(p("dragan")(linear, X, -X, KEY), (0.6 - 1) ** 2, rtol=1e-5)
  np.testing.assert_allclose(p("r1")(linear, X, -X, KEY), 0.5 * 0.36, rtol=1e-5)
  np.testing.assert_allclose(p("r2")(linear, X, -X, KEY), 0.5 * 0.36, rtol=1e-5)
  # drift: E_data[D(x)^2], on the reals only; D(X) = (0.6, 0).
  np.testing.assert_allclose(p("drift")(linear, X, -X, KEY), 0.36 / 2, rtol=1e-6)


def test_values_on_a_quadratic_critic():
  p = penalties.PENALTIES.get
  # real == fake: every interpolate is the sample itself; norms 3 and 0.5.
  np.testing.assert_allclose(p("wgan_gp")(quadratic, X, X, KEY), ((3 - 1) ** 2 + 0.5**2) / 2,
                             rtol=1e-5)
  np.testing.assert_allclose(p("wgan_gp")(quadratic, X, X, KEY, one_sided=True), 4 / 2, rtol=1e-5)
  np.testing.assert_allclose(p("r1")(quadratic, X, 2 * X, KEY), 0.5 * (9 + 0.25) / 2, rtol=1e-5)
  np.testing.assert_allclose(p("r2")(quadratic, X, 2 * X, KEY), 0.5 * (36 + 1) / 2, rtol=1e-5)


def test_wgan_gp_interpolates_between_real_and_fake():
  """On D(x) = 0.5||x||^2 the gradient at eps*r + (1-eps)*f has norm |eps*r + (1-eps)*f|."""
  real, fake = jnp.full((4096, 1), 1.0), jnp.full((4096, 1), 3.0)
  # norms = 3 - 2 eps, eps ~ U(0, 1): E[(2 - 2 eps)^2] = 4/3.
  np.testing.assert_allclose(penalties.wgan_gp(quadratic, real, fake, KEY), 4 / 3, rtol=0.05)


def test_consistency_penalises_exactly_d_s_sensitivity_to_the_augmentation():
  """cr: E[(D(x) - D(T(x)))^2]. On flat 16x16 images, the default T (a random flip, then a
  translation by up to 2 pixels, zero-filled) leaves the central 12x12 pixels unchanged: a
  D that reads only them gets 0, one that sums every pixel loses c * (pixels zero-filled)
  for each shifted image. cr_fake is the same on the fakes; an empty policy is refused."""
  flat = jnp.full((64, 16, 16, 3), 0.5)
  centre = lambda x: jnp.mean(x[:, 2:14, 2:14], axis=(1, 2, 3))
  total = lambda x: jnp.sum(x, axis=(1, 2, 3))
  assert float(penalties.cr(centre, flat, None, KEY)) == 0.0
  translated = augment.make_augment("flip,translation")(KEY, flat)
  lost = np.asarray(total(flat) - total(translated))  # 0.5 * 3 per zero-filled pixel
  assert np.all(lost >= 0) and np.mean(lost > 0) > 0.5
  np.testing.assert_allclose(penalties.cr(total, flat, None, KEY), np.mean(lost ** 2), rtol=1e-5)
  np.testing.assert_allclose(penalties.cr_fake(total, None, flat, KEY), np.mean(lost ** 2),
                             rtol=1e-5)
  with pytest.raises(ValueError, match="needs an augmentation policy"):
    penalties.cr(total, flat, None, KEY, policy="")


def test_parse_names():
  assert penalties.parse_names("") == []
  assert penalties.parse_names("wgan_gp, r1") == ["wgan_gp", "r1"]
  with pytest.raises(ValueError, match="unknown penalty 'gp'; choose from: cr, cr_fake, dragan, "
                                       "drift, r1, r2, wgan_gp"):
    penalties.parse_names("gp")
  with pytest.raises(ValueError, match="twice"):
    penalties.parse_names("r1,r1")


def test_penalties_enter_the_d_update():
  images_key = jax.random.PRNGKey(3)
  step, state, images = tiny(penalty__use="r1,wgan_gp,cr,cr_fake", penalty__r1__weight=5.0)
  plain_step, _, _ = tiny()
  real = images[0].astype(jnp.float32) / 127.5 - 1.0
  new, metrics = jax.jit(step.d_update)(state, real, images_key)
  plain, plain_metrics = jax.jit(plain_step.d_update)(state, real, images_key)
  assert {"r1_penalty", "wgan_gp_penalty", "cr_penalty", "cr_fake_penalty"} <= set(metrics)
  assert float(metrics["cr_penalty"]) > 0 and float(metrics["cr_fake_penalty"]) > 0
  np.testing.assert_allclose(metrics["d_loss"], plain_metrics["d_loss"], rtol=1e-5)  # adversarial part
  from gan_jax.step import apply_in_train_mode  # pylint: disable=g-import-not-at-top
  d_fn = lambda x: apply_in_train_mode(step.discriminator, state.d_params, state.d_stats, x)[0]
  np.testing.assert_allclose(metrics["r1_penalty"], penalties.r1(d_fn, real, None, None), rtol=1e-4)
  # The penalties' gradients reach D's parameters (Adam's first step is ~lr * sign(g), so
  # compare the gradients, not the parameters).
  assert not np.isclose(metrics["d_grad_norm"], plain_metrics["d_grad_norm"], rtol=1e-3)
  del new, plain


def test_an_annealed_weight_is_the_weight_of_the_iteration():
  """penalty.r1.weight_final: R1's weight annealed 2 -> 0.2 along a cosine over 10
  iterations. Halfway, iteration 5's D update (SGD: the update is the gradient) is the update
  with the constant weight (2 + 0.2) / 2 = 1.1, and iteration 0's the one with weight 2."""
  schedule = dict(optimizer="sgd", penalty__use="r1", optim__schedule="cosine",
                  train__num_steps=10)
  annealed, state, images = tiny(penalty__r1__weight=2.0, penalty__r1__weight_final=0.2,
                                 **schedule)
  real = images[0].astype(jnp.float32) / 127.5 - 1.0
  for step, weight in ((5, 1.1), (0, 2.0), (5, 2.0)):
    constant, _, _ = tiny(penalty__r1__weight=weight, **schedule)
    at = state.replace(step=jnp.int32(step))
    ours = jax.jit(annealed.d_update)(at, real, KEY)[0].d_params
    theirs = jax.jit(constant.d_update)(at, real, KEY)[0].d_params
    close = jax.tree.leaves(jax.tree.map(
        lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-7), ours, theirs))
    assert all(close) == ((step, weight) != (5, 2.0)), (step, weight)


def test_lazy_penalty_runs_every_n_iterations_scaled_by_n():
  step, state, images = tiny(penalty__use="r1", penalty__r1__every=4)
  real = images[0].astype(jnp.float32) / 127.5 - 1.0
  update = jax.jit(step.d_update)
  on = update(state, real, KEY)[1]["r1_penalty"]
  off = update(state.replace(step=jnp.int32(1)), real, KEY)[1]["r1_penalty"]
  every_step, _, _ = tiny(penalty__use="r1")
  plain = jax.jit(every_step.d_update)(state, real, KEY)[1]["r1_penalty"]
  assert float(off) == 0.0
  np.testing.assert_allclose(on, 4 * plain, rtol=1e-5)
  # The off-iterations skipped by a lax.cond (the accelerators' form) instead of computed
  # and dropped (this CPU's): the same values, and the same D update.
  assert step.lazy_branching == "select"
  skipping = jax.jit(dataclasses.replace(step, lazy_branching="cond").d_update)
  for s in (state, state.replace(step=jnp.int32(1))):
    ours, theirs = update(s, real, KEY), skipping(s, real, KEY)
    # (float rounding only: an Adam step moves a parameter by ~ its learning rate, 2e-4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=5e-6),
                 ours, theirs)


def test_branching_form_by_backend():
  assert branching.resolve("train.lazy_branching", "auto", ("cond", "select"), "cpu") == "select"
  assert branching.resolve("train.lazy_branching", "auto", ("cond", "select"), "gpu") == "cond"
  assert branching.resolve("train.lazy_branching", "cond", ("cond", "select"), "cpu") == "cond"
  with pytest.raises(ValueError, match="unknown train.lazy_branching 'switch'; choose from: "
                                       "cond, select, auto"):
    branching.resolve("train.lazy_branching", "switch", ("cond", "select"))
  for pred in (True, False):  # both forms pick the same side, leaf by leaf
    for how in ("cond", "select"):
      out = branching.cond_or_select(jnp.asarray(pred), lambda: (jnp.ones(2), 3.0),
                                     lambda: (jnp.zeros(2), 4.0), how)
      np.testing.assert_array_equal(out[0], np.ones(2) if pred else np.zeros(2))
      assert float(out[1]) == (3.0 if pred else 4.0)
