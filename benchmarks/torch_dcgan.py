"""The PyTorch reference for benchmarks/throughput.py: DCGAN-64 trained the standard way.

Same layers as gan_jax's DCGAN-64 (G: z 100 -> 4x4x512 -> ... -> 64x64x3 with
BatchNorm + ReLU and 4x4 stride-2 transposed convolutions, tanh; D: 4x4 stride-2
convolutions with BatchNorm + LeakyReLU 0.2, none on the first, to one logit),
N(0, 0.02) init, Adam 2e-4 betas (0.5, 0.999), non-saturating BCE on logits.
One iteration = one D update (real and fake batches, separate forward passes)
then one G update from fresh z, as gan_jax's step does. cuDNN benchmark mode,
channels_last memory format, and bf16 autocast for the bfloat16 rows (eager
PyTorch: no torch.compile, no CUDA graphs). Timed on one fixed batch already on
the GPU, after warm-up, like the JAX rows.
"""

import time


def _models(torch, nz=100, ngf=64, ndf=64):
  nn = torch.nn
  generator = nn.Sequential(
      nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
      nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4),
      nn.ReLU(True),
      nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2),
      nn.ReLU(True),
      nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
      nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())
  discriminator = nn.Sequential(
      nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
      nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
      nn.LeakyReLU(0.2, inplace=True),
      nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
      nn.LeakyReLU(0.2, inplace=True),
      nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8),
      nn.LeakyReLU(0.2, inplace=True),
      nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False))
  for module in list(generator.modules()) + list(discriminator.modules()):
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
      nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
      nn.init.normal_(module.weight, 1.0, 0.02)
      nn.init.zeros_(module.bias)
  return generator, discriminator


def measure(batch_size: int, dtype: str = "float32", iters: int = 50, warmup: int = 5,
            device: str = "cuda") -> dict:
  """images/s, ms per iteration and peak memory of the PyTorch DCGAN-64 (module docstring)."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.backends.cudnn.benchmark = True
  generator, discriminator = _models(torch)
  generator = generator.to(device, memory_format=torch.channels_last)
  discriminator = discriminator.to(device, memory_format=torch.channels_last)
  g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = torch.nn.BCEWithLogitsLoss()
  real = (torch.rand(batch_size, 3, 64, 64, device=device) * 2 - 1).contiguous(
      memory_format=torch.channels_last)
  ones = torch.ones(batch_size, device=device)
  zeros = torch.zeros(batch_size, device=device)
  autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16,
                            enabled=dtype == "bfloat16")

  def iteration():
    with autocast:
      fake = generator(torch.randn(batch_size, 100, 1, 1, device=device))
      d_loss = (bce(discriminator(real).view(-1).float(), ones)
                + bce(discriminator(fake.detach()).view(-1).float(), zeros))
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    with autocast:
      fake = generator(torch.randn(batch_size, 100, 1, 1, device=device))
      g_loss = bce(discriminator(fake).view(-1).float(), ones)
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    return d_loss, g_loss

  synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  for _ in range(warmup):
    iteration()
  synchronize()
  if device.startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
  start = time.perf_counter()
  for _ in range(iters):
    losses = iteration()
  synchronize()
  seconds = time.perf_counter() - start
  assert all(bool(torch.isfinite(l)) for l in losses)
  result = {
      "impl": f"pytorch {torch.__version__} eager",
      "dtype": dtype,
      "batch_size": batch_size,
      "images_per_sec": round(batch_size * iters / seconds, 1),
      "ms_per_iter": round(1e3 * seconds / iters, 2),
  }
  if device.startswith("cuda"):
    result["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del generator, discriminator, g_opt, d_opt, real
    torch.cuda.empty_cache()  # leave the memory to the JAX rows of the same process
  return result
