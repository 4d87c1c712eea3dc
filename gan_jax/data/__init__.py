"""Training data: sources (tfds, folder, zip), decoding, batch selection, feeding."""

from gan_jax.data.feeding import DeviceFeeder, HostFeeder, make_feeder
from gan_jax.data.images import ImagePolicy, LoadReport, decode_image, list_images, load_images
from gan_jax.data.labels import LABEL_SETS, LabeledBatch, LabelSet, label_set_of
from gan_jax.data.pipeline import (FEEDS, decode_split, example_spec, label_classes,
                                   make_pipeline, make_sample_report, policy_of, toy_mixture,
                                   validate)
from gan_jax.data.sampler import EpochSampler
from gan_jax.data.sources import decode_source, load_source, make_source
from gan_jax.data.streaming import StreamFeeder

__all__ = ["DeviceFeeder", "EpochSampler", "FEEDS", "HostFeeder", "ImagePolicy", "LABEL_SETS",
           "LabelSet", "LabeledBatch", "LoadReport", "decode_split", "label_classes",
           "label_set_of",
           "StreamFeeder", "decode_image", "decode_source", "list_images", "load_images",
           "load_source", "example_spec", "make_feeder", "make_pipeline", "make_sample_report", "make_source",
           "policy_of", "toy_mixture", "validate"]
