"""Training data: image sources, batch selection and feeding."""

from gan_jax.data.feeding import HostFeeder
from gan_jax.data.images import LoadReport, decode_image, list_images, load_images
from gan_jax.data.sampler import EpochSampler
