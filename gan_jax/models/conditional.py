"""Class conditioning shared by the model families that support labels (dcgan, resnet,
biggan and biggan_deep: their G conditions through a shared embedding, models/biggan.py
and biggan_deep.py; stylegan2: its
mapping network reads z and the labels' embedding, models/stylegan2.py; progan; r3gan).

Labels are int32 (batch, num_heads): one class per head (e.g. hair colour and
eye colour, gan_jax/data/labels.py), `label_classes` the classes per head.

  Generator      g_cond='concat' (default): each head's label has a learned embedding
                 (`embed_dim` each), concatenated to z before G's first layer;
                 g_cond='cbn' (resnet only): conditional BatchNorm in every up-block
                 (as the projection-discriminator paper's generator): BatchNorm
                 without its own affine, then per sample gamma = 1 + sum over heads
                 of G_head[y_head] and beta = sum over heads of B_head[y_head], one
                 learned C-vector pair per class and layer, starting at 0 (so an
                 untrained cBN is the plain BatchNorm at its initialisation).
  Discriminator  from D's pooled features phi(x) (batch, F):
                   projection (Miyato & Koyama 2018): logit = psi(phi) + sum over
                     heads of <E_head[y_head], phi>, one learned F-dim embedding per
                     class (spectrally normalised with the rest of D when D is);
                   acgan (Odena et al. 2017): an auxiliary classifier, one Dense
                     head per label head on phi, whose logits the step trains with
                     cross-entropy (config.loss.ac_weight; gan_jax/step.py).
                 `D_CONDS` lists the combinations.
Unconditional models (label_classes == ()) are exactly the original modules.
"""

from typing import Dict, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.registry import check_choice

D_CONDS = ("projection", "acgan", "projection+acgan")
G_CONDS = ("concat", "cbn")
CONDITIONAL_FAMILIES = ("dcgan", "resnet", "biggan", "biggan_deep", "stylegan2", "progan",
                        "r3gan")


def parse_d_cond(text: str) -> Tuple[bool, bool]:
  """'projection' | 'acgan' | 'projection+acgan' -> (projection, acgan); ValueError otherwise."""
  check_choice("model.d_cond", text, D_CONDS)
  return "projection" in text, "acgan" in text


def check_labels(labels: Optional[jax.Array], label_classes: Sequence[int], who: str) -> None:
  """ValueError when a conditional module gets no labels, an unconditional one gets labels,
  or their shape does not match the heads (trace-time check)."""
  if label_classes and labels is None:
    raise ValueError(f"this {who} is conditional ({len(label_classes)} label heads with "
                     f"{tuple(label_classes)} classes): call it with labels=(batch, "
                     f"{len(label_classes)}) int labels")
  if not label_classes and labels is not None:
    raise ValueError(f"this {who} is unconditional: build it with label classes (set "
                     "config.data.labels) to pass labels")
  if labels is not None and (labels.ndim != 2 or labels.shape[1] != len(label_classes)):
    raise ValueError(f"{who} labels must be (batch, {len(label_classes)}), got {labels.shape}")


class LabelEmbedding(nn.Module):
  """int labels (batch, heads) -> (batch, heads, features): one learned vector per class of
  each head; spectrally normalised embeddings with `spectral_norm` (power iteration in
  `batch_stats`, advanced in train mode)."""
  label_classes: Tuple[int, ...]
  features: int
  spectral_norm: bool = False
  embedding_init: nn.initializers.Initializer = nn.initializers.normal(stddev=0.02)

  @nn.compact
  def __call__(self, labels: jax.Array, *, train: bool) -> jax.Array:
    out = []
    for head, classes in enumerate(self.label_classes):
      embed = nn.Embed(classes, self.features, embedding_init=self.embedding_init,
                       name=f"head_{head}")
      if self.spectral_norm:
        out.append(nn.SpectralNorm(embed, name=f"sn_head_{head}")(labels[:, head],
                                                                   update_stats=train))
      else:
        out.append(embed(labels[:, head]))
    return jnp.stack(out, axis=1)


def condition_latent(z: jax.Array, labels: Optional[jax.Array], label_classes: Tuple[int, ...],
                     embed_dim: int, train: bool,
                     embedding: Optional[nn.Module] = None) -> jax.Array:
  """z, or [z, embeddings of each head's label] for a conditional generator (call inside
  the generator's compact __call__, which gets the embedding as its submodule, unless a
  setup-style module passes its own LabelEmbedding `embedding`)."""
  check_labels(labels, label_classes, "generator")
  if not label_classes:
    return z
  if embedding is None:
    embedding = LabelEmbedding(label_classes, embed_dim, name="label_embedding")
  embedded = embedding(labels, train=train)
  return jnp.concatenate([z, embedded.reshape(z.shape[0], -1).astype(z.dtype)], axis=-1)


def conditional_options(model_config, label_classes: Tuple[int, ...]) -> Dict[str, dict]:
  """{'g': G's conditional fields, 'd': D's} for `label_classes` (empty dicts when
  unconditional, so unconditional modules keep their defaults): model.d_cond, g_cond
  and label_embed_dim (default 32) checked and passed on."""
  if not label_classes:
    return {"g": {}, "d": {}}
  d_cond = model_config.get("d_cond", "projection")
  parse_d_cond(d_cond)  # fail early on an unknown name
  g_cond = model_config.get("g_cond", "concat")
  check_g_cond(g_cond, model_config.name)
  g = dict(label_classes=tuple(label_classes), embed_dim=model_config.get("label_embed_dim", 32))
  if model_config.name == "resnet":
    g["g_cond"] = g_cond
  return {"g": g, "d": dict(label_classes=tuple(label_classes), d_cond=d_cond)}


def check_g_cond(g_cond: str, family: str) -> None:
  """ValueError for an unknown model.g_cond, or 'cbn' in a family without it (dcgan)."""
  check_choice("model.g_cond", g_cond, G_CONDS)
  if g_cond == "cbn" and family != "resnet":
    raise ValueError(f"model.g_cond='cbn' (conditional BatchNorm) is implemented for the "
                     f"resnet family, not {family!r}; use g_cond='concat'")


def normalise_then_modulate(x: jax.Array, gamma: jax.Array, beta: jax.Array, *, train: bool,
                            momentum: float, epsilon: float) -> jax.Array:
  """x through a BatchNorm without its own affine (a submodule named 'norm' of the calling
  module; running statistics in `batch_stats`), then x * gamma + beta per sample and channel
  (gamma, beta: (batch, C), cast to x's dtype)."""
  x = nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon,
                   use_scale=False, use_bias=False, name="norm")(x)
  return (x * gamma[:, None, None, :].astype(x.dtype)
          + beta[:, None, None, :].astype(x.dtype))


class ConditionalBatchNorm(nn.Module):
  """BatchNorm whose scale and shift come from the labels (batch, heads): gamma = 1 + sum of
  each head's class embedding, beta = the sum of a second one (zeros at initialisation).
  Running statistics as nn.BatchNorm's, in `batch_stats`."""
  label_classes: Tuple[int, ...]
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array, *, train: bool) -> jax.Array:
    features = x.shape[-1]
    zeros = nn.initializers.zeros
    gamma = 1.0 + jnp.sum(LabelEmbedding(self.label_classes, features, embedding_init=zeros,
                                         name="gamma")(labels, train=train), axis=1)
    beta = jnp.sum(LabelEmbedding(self.label_classes, features, embedding_init=zeros,
                                  name="beta")(labels, train=train), axis=1)
    return normalise_then_modulate(x, gamma, beta, train=train, momentum=self.momentum,
                                   epsilon=self.epsilon)


class ConditionalHead(nn.Module):
  """D's conditional terms from pooled features phi (batch, F) and labels (batch, heads):
  (projection logit term (batch,) or 0, {head index: class logits} for AC-GAN or {})."""
  label_classes: Tuple[int, ...]
  projection: bool = True
  acgan: bool = False
  spectral_norm: bool = False
  # The projection embeddings' and the AC-GAN heads' initialiser (None: Xavier uniform and
  # flax's LeCun normal).
  kernel_init: Optional[nn.initializers.Initializer] = None

  @nn.compact
  def __call__(self, phi: jax.Array, labels: jax.Array, *, train: bool
               ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    term = jnp.zeros(phi.shape[:1], phi.dtype)
    if self.projection:
      embedded = LabelEmbedding(self.label_classes, phi.shape[-1], self.spectral_norm,
                                embedding_init=self.kernel_init or nn.initializers.xavier_uniform(),
                                name="projection")(labels, train=train)
      term = jnp.einsum("bhf,bf->b", embedded, phi)
    aux = {}
    if self.acgan:
      dense_init = self.kernel_init or nn.initializers.lecun_normal()
      for head, classes in enumerate(self.label_classes):
        aux[str(head)] = nn.Dense(classes, kernel_init=dense_init, name=f"aux_head_{head}")(phi)
    return term, aux


def discriminator_output(logit: jax.Array, phi: jax.Array, labels: Optional[jax.Array],
                         label_classes: Tuple[int, ...], d_cond: str, spectral_norm: bool,
                         train: bool, return_aux: bool, head: Optional[nn.Module] = None,
                         kernel_init: Optional[nn.initializers.Initializer] = None):
  """D's output from its unconditional logit (batch,) and pooled features phi (batch, F):
  the logit plus the projection term; with `return_aux`, (logit, {head: class logits}).
  The ConditionalHead is made here (call from a compact __call__; its layers initialised
  by `kernel_init`, None: their defaults) unless a setup-style module passes its own
  `head`."""
  check_labels(labels, label_classes, "discriminator")
  if not label_classes:
    if return_aux:
      raise ValueError("return_aux: this discriminator is unconditional (no AC-GAN head)")
    return logit
  projection, acgan = parse_d_cond(d_cond)
  if head is None:
    head = ConditionalHead(label_classes, projection, acgan, spectral_norm,
                           kernel_init=kernel_init, name="conditional")
  term, aux = head(phi, labels, train=train)
  logit = logit + term
  if return_aux:
    if not acgan:
      raise ValueError(f"return_aux: model.d_cond={d_cond!r} has no AC-GAN head")
    return logit, aux
  return logit
