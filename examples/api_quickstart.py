"""prunelab's Python API in a notebook: how much of MY network can I remove?

Run it as a script (`python examples/api_quickstart.py [RUN_DIR]`) or cell by cell in Jupyter
(the `# %%` markers). It uses the synthetic stand-in data so it runs anywhere in seconds (the
test suite runs it); put your own Dataset / DataLoader where it says so.
"""

# %% Imports
from __future__ import annotations

import sys
import tempfile

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from engine import api
from engine.config import NORMALIZATIONS, DataOptions
from engine.data.sources import load_split

torch.manual_seed(0)
RUN_DIR = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="prunelab-example-")


# %% Data: any Dataset of (image, label) or DataLoader works; here the synthetic stand-in,
# normalised as a user's transforms would (float images are taken as the model's input).
def as_dataset(train: bool, count: int) -> TensorDataset:
    options = DataOptions(dataset="synthetic", train_subset=count, test_subset=count)
    split = load_split(options, train=train)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATIONS["cifar"])
    images = (split.images.float() / 255 - mean) / std
    return TensorDataset(images, split.labels)


train_set, test_set = as_dataset(True, 512), as_dataset(False, 256)


# %% Your network: any nn.Module (here a small CNN with a depthwise-separable layer).
class SmallNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pointwise = nn.Conv2d(16, 32, 1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.pointwise(F.relu(self.depthwise(x))))
        return self.fc(x.mean((2, 3)))


model = SmallNet()

# %% Train it your usual way (three quick epochs here).
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
for _ in range(3):
    for images, labels in DataLoader(train_set, batch_size=64, shuffle=True):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

# %% Sweep: accuracy with its 95% interval at every level; the answer within 1 point.
result = api.sweep(
    model, test_set, levels="0:90:30", method="global", run_dir=RUN_DIR, progress=True
)
for point in result.points:
    low, high = point.accuracy_ci95
    print(
        f"{point.level_percent:4.0f}%  {point.accuracy:6.2f}%  ({low:.1f}-{high:.1f})  {point.macs:,} MACs"
    )
print(result.sentence())

# %% Find: the best level alone (scan, then bisect).
best = api.find(model, test_set, method="global", coarse_step=25, resolution=5, run_dir=RUN_DIR)
print("best level:", best.best_level_percent)

# %% Fine-tune at a level with the mask fixed: dense, one-shot and recovered accuracy.
tuned = api.finetune(model, train_set, test_set, level=60, method="global", run_dir=RUN_DIR)
print(tuned.sentence())

# %% Export the pruned network as a really smaller file.
exported = api.export(model, f"{RUN_DIR}/small.pth", level=60, method="global", run_dir=RUN_DIR)
print(f"wrote {exported.path}: {exported.file_bytes:,} bytes ({exported.dense_file_bytes:,} dense)")
print(f"runs in {RUN_DIR}: see them with `prunelab runs --run-dir {RUN_DIR}` or the app")
