"""Suite-wide settings: one intra-op thread, so small models are fast and timings steady on
a shared 2-core machine (the results do not depend on it)."""

import torch

torch.set_num_threads(1)
