"""Notebook cells in the style of real PyTorch / pandas / sklearn / matplotlib notebooks,
with the module-level names the scanner (greed_kernel.analysis.scope) must find in each.

Cells are written as the user types them (magics included); the tests run them
through IPython's TransformerManager first, as the kernel sees them. Names are
space-separated. ``exact=False`` means ``reads`` is only a subset check (where
builtins make the exact set noisy); ``writes`` and ``deletes`` are always exact.
``not_reads`` lists names that must NOT be reported as reads (scoping checks).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    name: str
    source: str
    reads: frozenset[str]
    writes: frozenset[str]
    deletes: frozenset[str]
    exact: bool
    not_reads: frozenset[str]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


def C(
    name: str,
    source: str,
    r: str = "",
    w: str = "",
    d: str = "",
    exact: bool = True,
    no: str = "",
) -> Cell:
    return Cell(name, source, _names(r), _names(w), _names(d), exact, _names(no))


CORPUS: list[Cell] = [
    # -- imports ----------------------------------------------------------------------
    C(
        "imports-scientific",
        """\
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
""",
        w="np pd plt",
    ),
    C(
        "imports-torch",
        """\
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
""",
        w="torch nn F DataLoader TensorDataset",
    ),
    C(
        "imports-stdlib",
        """\
import os, sys, json
from pathlib import Path
from collections import defaultdict as dd, Counter
""",
        w="os sys json Path dd Counter",
    ),
    C(
        "imports-sklearn",
        """\
from sklearn.model_selection import train_test_split
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report
""",
        w="train_test_split LogisticRegression accuracy_score classification_report",
    ),
    C(
        "imports-star",
        """\
from pylab import *
from math import pi
x = linspace(0, 2 * pi, 100)
""",
        r="linspace pi",
        w="pi x",
    ),
    C(
        "imports-dotted",
        """\
import os.path
import xml.etree.ElementTree as ET
import importlib.util
os.path.exists(fname)
""",
        r="os fname",
        w="os ET importlib",
    ),
    C(
        "imports-matplotlib-inline",
        """\
%matplotlib inline
import seaborn as sns
sns.set_theme(style="whitegrid")
""",
        r="get_ipython sns",
        w="sns",
    ),
    C(
        "imports-future",
        """\
from __future__ import annotations
from typing import Optional
""",
        w="annotations Optional",
    ),
    C(
        "imports-conditional",
        """\
try:
    import wandb
except ImportError as err:
    wandb = None
    print(f"wandb unavailable: {err}")
""",
        r="ImportError print err",
        w="wandb err",
    ),
    C(
        "imports-autoreload",
        """\
%load_ext autoreload
%autoreload 2
from mypkg.models import ResNetLike
""",
        r="get_ipython",
        w="ResNetLike",
    ),
    # -- data loading -----------------------------------------------------------------
    C(
        "pandas-read-csv",
        """\
df = pd.read_csv("data/train.csv", parse_dates=["date"])
df.head()
""",
        r="pd df",
        w="df",
    ),
    C(
        "pandas-fillna-in-place",
        """\
df["age"] = df["age"].fillna(df["age"].median())
df.info()
""",
        r="df",
    ),
    C(
        "sklearn-split",
        """\
X = df.drop(columns=["target"]).values
y = df["target"].values
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED)
""",
        r="df train_test_split X y SEED",
        w="X y X_train X_test y_train y_test",
    ),
    C(
        "pathlib-glob-concat",
        """\
data_dir = Path(os.environ.get("DATA_DIR", "~/data")).expanduser()
files = sorted(data_dir.glob("*.parquet"))
frames = [pd.read_parquet(f) for f in files]
df = pd.concat(frames, ignore_index=True)
""",
        r="Path os sorted data_dir files pd frames",
        w="data_dir files frames df",
        no="f",
    ),
    C(
        "json-config",
        """\
with open(config_path) as fh:
    cfg = json.load(fh)
lr = cfg["optim"]["lr"]
""",
        r="open config_path json fh cfg",
        w="fh cfg lr",
    ),
    C(
        "pandas-groupby-chain",
        """\
(df.groupby("country")["sales"]
   .agg(["mean", "sum"])
   .sort_values("sum", ascending=False)
   .head(top_n))
""",
        r="df top_n",
    ),
    C(
        "pandas-filter-copy",
        """\
df = df[df.price > 0].copy()
df["log_price"] = np.log1p(df.price)
""",
        r="df np",
        w="df",
    ),
    C(
        "pandas-value-counts-plot",
        """\
counts = df.category.value_counts()
counts[counts > min_count].plot.bar(figsize=(10, 4))
""",
        r="df counts min_count",
        w="counts",
    ),
    C(
        "shell-capture-lines",
        """\
raw = !cat data/sample.txt
lines = [line.strip() for line in raw if line]
""",
        r="get_ipython raw",
        w="raw lines",
        no="line",
    ),
    C(
        "shell-pip-install-expansion",
        """\
!pip install -q {package}=={version}
""",
        r="get_ipython package version",
    ),
    C(
        "shell-dollar-expansion",
        """\
!ls -la $data_dir | head -n $n_show
""",
        r="get_ipython data_dir n_show",
    ),
    C(
        "shell-pip-list",
        """\
!pip list | grep torch
""",
        r="get_ipython",
    ),
    C(
        "pandas-apply-lambda",
        """\
df["n_words"] = df["text"].apply(lambda s: len(s.split()))
""",
        r="df len",
        no="s",
    ),
    C(
        "pandas-merge",
        """\
merged = pd.merge(left, right, on="id", how="left", suffixes=("", "_r"))
merged.shape
""",
        r="pd left right merged",
        w="merged",
    ),
    C(
        "numpy-linear-algebra",
        """\
rng = np.random.default_rng(0)
A = rng.normal(size=(n, n))
A = A @ A.T + n * np.eye(n)
L = np.linalg.cholesky(A)
""",
        r="np rng n A",
        w="rng A L",
    ),
    C(
        "describe-last-expression",
        """\
df.describe()
""",
        r="df",
    ),
    C("empty-cell", "", r=""),
    C(
        "comment-only",
        """\
# TODO: try a bigger batch size
""",
    ),
    # -- models -----------------------------------------------------------------------
    C(
        "model-class",
        """\
class Net(nn.Module):
    def __init__(self, in_dim, hidden, n_classes):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        return self.fc2(self.dropout(x))
""",
        r="nn super DROPOUT F",
        w="Net",
        no="x self in_dim hidden n_classes",
    ),
    C(
        "dataset-class",
        """\
class TextDataset(Dataset):
    def __init__(self, texts, labels, tokenizer, max_len=MAX_LEN):
        self.texts, self.labels = texts, labels
        self.tok = tokenizer
        self.max_len = max_len

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, idx):
        enc = self.tok(self.texts[idx], truncation=True, max_length=self.max_len)
        return {**enc, "label": torch.tensor(self.labels[idx])}
""",
        r="Dataset MAX_LEN len torch",
        w="TextDataset",
        no="enc idx self",
    ),
    C(
        "dataclass-config",
        """\
@dataclass
class Config:
    lr: float = 1e-3
    epochs: int = 10
    layers: list = field(default_factory=lambda: [64, 64])
    name: str = DEFAULT_NAME
""",
        r="dataclass float int list field str DEFAULT_NAME",
        w="Config",
        no="lr epochs layers name",
    ),
    C(
        "class-attrs-not-visible-in-methods",
        """\
class Trainer:
    lr = 0.1
    momentum = lr * 9
    def step(self):
        return lr * self.lr
""",
        r="lr",
        w="Trainer",
        no="momentum",
    ),
    C(
        "class-property-setter",
        """\
class Meter:
    def __init__(self):
        self._total = 0.0

    @property
    def total(self):
        return self._total

    @total.setter
    def total(self, value):
        self._total = float(value)
""",
        r="property float",
        w="Meter",
        no="total value",
    ),
    C(
        "class-classmethod-staticmethod",
        """\
class Registry:
    _models = {}

    @classmethod
    def register(cls, name):
        def deco(fn):
            cls._models[name] = fn
            return fn
        return deco

    @staticmethod
    def available():
        return sorted(Registry._models)
""",
        r="classmethod staticmethod sorted Registry",
        w="Registry",
        no="_models cls fn deco name",
    ),
    C(
        "class-comprehension-sees-only-first-iterable",
        """\
class Grid:
    size = 4
    cells = [(i, j) for i in range(size) for j in range(size)]
""",
        r="range size",
        w="Grid",
        no="i j",
    ),
    C(
        "class-enum",
        """\
class Color(Enum):
    RED = 1
    GREEN = 2
    favorite = RED
""",
        r="Enum",
        w="Color",
        no="RED",
    ),
    C(
        "class-namedtuple",
        """\
from typing import NamedTuple
class Point(NamedTuple):
    x: float
    y: float = 0.0
""",
        r="NamedTuple float",
        w="NamedTuple Point",
        no="x y",
    ),
    C(
        "class-nested",
        """\
class Outer:
    class Inner:
        scale = 2
    inner = Inner()
""",
        w="Outer",
        no="Inner",
    ),
    C(
        "class-self-assignment-reads-global",
        """\
class Settings:
    name = name
    tag = name.upper()
""",
        r="name",
        w="Settings",
    ),
    C(
        "class-inside-function",
        """\
def build(n_layers):
    class Deep(nn.Module):
        depth = n_layers
        def forward(self, x):
            return x * depth_scale
    return Deep()
""",
        r="nn depth_scale",
        w="build",
        no="n_layers Deep depth",
    ),
    C(
        "resnet-block",
        """\
class Block(nn.Module):
    expansion = 1

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                       nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.short(x))
""",
        r="nn super F",
        w="Block",
        no="expansion out x stride",
    ),
    # -- training ---------------------------------------------------------------------
    C(
        "device-select",
        """\
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
device
""",
        r="torch device",
        w="device",
    ),
    C(
        "model-optimizer-setup",
        """\
model = Net(in_dim, hidden, n_classes).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
criterion = nn.CrossEntropyLoss()
""",
        r="Net in_dim hidden n_classes device torch model lr wd nn",
        w="model optimizer criterion",
    ),
    C(
        "training-loop",
        """\
for epoch in range(n_epochs):
    model.train()
    running_loss = 0.0
    for xb, yb in train_loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * xb.size(0)
    history.append(running_loss / len(train_loader.dataset))
    print(f"epoch {epoch + 1}/{n_epochs}: loss={history[-1]:.4f}")
""",
        r="range n_epochs model running_loss train_loader xb yb device optimizer criterion "
        "loss history len print epoch",
        w="epoch running_loss xb yb loss",
    ),
    C(
        "evaluation-no-grad",
        """\
model.eval()
correct = total = 0
with torch.no_grad():
    for xb, yb in test_loader:
        pred = model(xb.to(device)).argmax(dim=1)
        correct += (pred == yb.to(device)).sum().item()
        total += yb.numel()
print(f"accuracy: {correct / total:.2%}")
""",
        r="model torch test_loader xb device pred yb correct total print",
        w="correct total xb yb pred",
    ),
    C(
        "train-function",
        """\
def train_one_epoch(model, loader, optimizer):
    model.train()
    losses = []
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb.to(device)), yb.to(device))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)
""",
        r="criterion device sum len",
        w="train_one_epoch",
        no="model loader optimizer losses loss xb yb",
    ),
    C(
        "global-step-counter",
        """\
def log_step(loss):
    global global_step
    global_step += 1
    writer.add_scalar("train/loss", loss, global_step)
""",
        r="global_step writer",
        w="log_step global_step",
        no="loss",
    ),
    C(
        "early-stopping",
        """\
best, patience_left = float("inf"), patience
for epoch in range(max_epochs):
    val_loss = evaluate(model, val_loader)
    if val_loss < best - min_delta:
        best, patience_left = val_loss, patience
        torch.save(model.state_dict(), ckpt_path)
    else:
        patience_left -= 1
        if patience_left == 0:
            break
""",
        r="float patience range max_epochs evaluate model val_loader val_loss best min_delta "
        "torch ckpt_path patience_left",
        w="best patience_left epoch val_loss",
    ),
    C(
        "checkpoint-save",
        """\
torch.save({"model": model.state_dict(), "epoch": epoch}, ckpt_dir / f"epoch{epoch:03d}.pt")
""",
        r="torch model epoch ckpt_dir",
    ),
    C(
        "free-memory",
        """\
del model, optimizer
gc.collect()
torch.cuda.empty_cache()
""",
        r="gc torch",
        d="model optimizer",
    ),
    C(
        "del-subscript",
        """\
del cache[key], df["tmp"]
del df_raw
""",
        r="cache key df",
        d="df_raw",
    ),
    C(
        "lr-scheduler-lambda",
        """\
scheduler = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda ep: warmup_factor ** ep if ep < warmup else 1.0
)
""",
        r="torch optimizer warmup_factor warmup",
        w="scheduler",
        no="ep",
    ),
    C(
        "grad-clip",
        """\
nn.utils.clip_grad_norm_(model.parameters(), max_norm)
optimizer.step()
""",
        r="nn model max_norm optimizer",
    ),
    C(
        "set-pretrained-weight",
        """\
model.fc.weight.data = pretrained_w.clone()
model.fc.bias = None
""",
        r="model pretrained_w",
    ),
    C(
        "load-state-dict",
        """\
state = torch.load(path, map_location="cpu")
missing, unexpected = model.load_state_dict(state["model"], strict=False)
""",
        r="torch path model state",
        w="state missing unexpected",
    ),
    C(
        "mixed-precision",
        """\
scaler = torch.cuda.amp.GradScaler()
with torch.autocast(device_type="cuda", dtype=torch.float16):
    out = model(x)
    loss = criterion(out, y)
scaler.scale(loss).backward()
scaler.step(optimizer)
scaler.update()
""",
        r="torch model x criterion out y scaler loss optimizer",
        w="scaler out loss",
    ),
    C(
        "gradient-accumulation",
        """\
for i, (xb, yb) in enumerate(loader):
    loss = criterion(model(xb), yb) / accum_steps
    loss.backward()
    if (i + 1) % accum_steps == 0:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
""",
        r="enumerate loader criterion model xb yb accum_steps loss i optimizer",
        w="i xb yb loss",
    ),
    C(
        "augmented-assignments",
        """\
epoch += 1
metrics["acc"] += correct / total
weights *= decay
model.temperature /= 2
""",
        r="epoch metrics correct total weights decay model",
        w="epoch weights",
    ),
    C(
        "huggingface-inference",
        """\
tokenizer = AutoTokenizer.from_pretrained(model_name)
enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
with torch.inference_mode():
    logits = model(**enc).logits
probs = logits.softmax(-1)
""",
        r="AutoTokenizer model_name tokenizer texts torch model enc logits",
        w="tokenizer enc logits probs",
    ),
    C(
        "sklearn-pipeline",
        """\
pipe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
pipe.fit(X_train, y_train)
print(classification_report(y_test, pipe.predict(X_test)))
""",
        r="make_pipeline StandardScaler LogisticRegression C pipe X_train y_train print "
        "classification_report y_test X_test",
        w="pipe",
    ),
    C(
        "sklearn-grid-search",
        """\
param_grid = {"C": [0.1, 1, 10], "penalty": ["l2"]}
search = GridSearchCV(LogisticRegression(), param_grid, cv=5, n_jobs=-1)
search.fit(X, y)
search.best_params_
""",
        r="GridSearchCV LogisticRegression param_grid search X y",
        w="param_grid search",
    ),
    C(
        "sklearn-cross-val",
        """\
scores = cross_val_score(clf, X, y, cv=KFold(5, shuffle=True, random_state=0))
print(f"{scores.mean():.3f} ± {scores.std():.3f}")
""",
        r="cross_val_score clf X y KFold print scores",
        w="scores",
    ),
    # -- plotting ---------------------------------------------------------------------
    C(
        "plot-losses-and-image",
        """\
fig, ax = plt.subplots(1, 2, figsize=(12, 4))
ax[0].plot(train_losses, label="train")
ax[0].plot(val_losses, label="val")
ax[0].legend()
ax[1].imshow(img.permute(1, 2, 0).cpu())
plt.tight_layout()
""",
        r="plt ax train_losses val_losses img",
        w="fig ax",
    ),
    C(
        "plot-results-loop",
        """\
for i, (name, values) in enumerate(results.items()):
    plt.plot(values, label=f"{name} ({values[-1]:.2f})")
plt.legend()
plt.show()
""",
        r="enumerate results plt values name",
        w="i name values",
    ),
    C(
        "plot-grid-of-images",
        """\
fig, axes = plt.subplots(4, 4, figsize=(8, 8))
for ax, (img, label) in zip(axes.flat, samples):
    ax.imshow(img.squeeze(), cmap="gray")
    ax.set_title(classes[label])
    ax.axis("off")
""",
        r="plt zip axes samples ax img classes label",
        w="fig axes ax img label",
    ),
    C(
        "plot-confusion-matrix",
        """\
cm = confusion_matrix(y_test, preds, normalize="true")
sns.heatmap(cm, annot=True, fmt=".2f", cmap=cmap, xticklabels=classes, yticklabels=classes)
plt.xlabel("predicted"); plt.ylabel("true")
""",
        r="confusion_matrix y_test preds sns cm cmap classes plt",
        w="cm",
    ),
    C(
        "plot-savefig-fstring",
        """\
plt.savefig(out_dir / f"{run_name}_{epoch:04d}.png", dpi=dpi, bbox_inches="tight")
plt.close(fig)
""",
        r="plt out_dir run_name epoch dpi fig",
    ),
    C(
        "plot-with-style-context",
        """\
with plt.style.context("ggplot"):
    df.plot(x="date", y=cols, subplots=True, figsize=(10, 2 * len(cols)))
""",
        r="plt df cols len",
    ),
    # -- magics -----------------------------------------------------------------------
    C(
        "magic-time-line",
        """\
%time preds = model.predict(X_test)
""",
        r="get_ipython model X_test",
        w="preds",
    ),
    C(
        "magic-timeit-options",
        """\
%timeit -n 10 -r 3 np.dot(a, b)
""",
        r="get_ipython np a b",
    ),
    C(
        "magic-timeit-bindings-are-local",
        """\
%timeit y = f(x)
""",
        r="get_ipython f x",
    ),
    C(
        "magic-timeit-output",
        """\
res = %timeit -o model(x)
res.best
""",
        r="get_ipython model x res",
        w="res",
    ),
    C(
        "magic-cell-time-body-invisible",
        """\
%%time
for epoch in range(3):
    train(epoch)
""",
        r="get_ipython",
        no="train range",
    ),
    C(
        "magic-capture",
        """\
%%capture cap --no-stderr
!pip install transformers
""",
        r="get_ipython",
        w="cap",
    ),
    C(
        "magic-prun",
        """\
%prun -s cumulative train(model, loader)
""",
        r="get_ipython train model loader",
    ),
    C(
        "magic-help",
        """\
model.forward?
""",
        r="get_ipython model",
    ),
    C(
        "magic-help-double",
        """\
??np.linalg.svd
""",
        r="get_ipython np",
    ),
    C(
        "magic-xdel",
        """\
%xdel big_tensor
""",
        r="get_ipython",
        d="big_tensor",
    ),
    C(
        "magic-writefile",
        """\
%%writefile train.py
import torch
print(torch.__version__)
""",
        r="get_ipython",
        no="torch print",
    ),
    C(
        "magic-mixed-lines",
        """\
x = load()
%time y = x * 2
z = y + 1
""",
        r="load get_ipython x y",
        w="x y z",
    ),
    C(
        "magic-env",
        """\
%env CUDA_VISIBLE_DEVICES=0
""",
        r="get_ipython",
    ),
    C(
        "magic-who-ls",
        """\
names = %who_ls
""",
        r="get_ipython",
        w="names",
    ),
    C(
        "magic-time-expression",
        """\
%time sum(t.numel() for t in model.parameters())
""",
        r="get_ipython sum model",
        no="t",
    ),
    # -- async ------------------------------------------------------------------------
    C(
        "async-sleep",
        """\
import asyncio
await asyncio.sleep(0.1)
""",
        r="asyncio",
        w="asyncio",
    ),
    C(
        "async-gather",
        """\
async def fetch(session, url):
    async with session.get(url, timeout=timeout) as resp:
        return await resp.json()

results = await asyncio.gather(*(fetch(session, u) for u in urls))
""",
        r="timeout asyncio fetch session urls",
        w="fetch results",
        no="u url resp",
    ),
    C(
        "async-for-top-level",
        """\
async for batch in stream(source):
    total += len(batch)
""",
        r="stream source total len batch",
        w="batch total",
    ),
    C(
        "async-with-top-level",
        """\
async with aiohttp.ClientSession() as session:
    html = await (await session.get(url)).text()
""",
        r="aiohttp session url",
        w="session html",
    ),
    # -- comprehensions ---------------------------------------------------------------
    C(
        "dict-comprehension",
        """\
squares = {n: n ** 2 for n in range(limit)}
""",
        r="range limit",
        w="squares",
        no="n",
    ),
    C(
        "nested-comprehension",
        """\
pairs = [(i, j) for i in range(n) for j in range(i) if grid[i][j]]
""",
        r="range n grid",
        w="pairs",
        no="i j",
    ),
    C(
        "generator-expression",
        """\
n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"{n_params:,} trainable parameters")
""",
        r="sum model print n_params",
        w="n_params",
        no="p",
    ),
    C(
        "walrus-in-comprehension",
        """\
hits = [y for x in data if (y := f(x)) is not None]
""",
        r="data f y",
        w="hits y",
        no="x",
    ),
    C(
        "comprehension-shadows-global",
        """\
x = 10
vals = [x for x in range(3)]
print(x, vals)
""",
        r="range print x vals",
        w="x vals",
    ),
    C(
        "set-comprehension-nested-lambda",
        """\
vocab = {tok.lower() for line in corpus for tok in tokenize(line) if keep(tok)}
key_fn = lambda w: (-freq[w], w)
""",
        r="corpus tokenize keep freq",
        w="vocab key_fn",
        no="tok line w",
    ),
    C(
        "lambda-default-captures-loop-var",
        """\
callbacks = [lambda v, i=i: v * i * scale for i in range(3)]
""",
        r="range scale",
        w="callbacks",
        no="i v",
    ),
    C(
        "sorted-key-lambda",
        """\
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
""",
        r="sorted counts k",
        w="top",
        no="kv",
    ),
    # -- nested functions, closures, decorators ---------------------------------------
    C(
        "closure-nonlocal",
        """\
def make_counter():
    count = 0
    def inc():
        nonlocal count
        count += 1
        return count
    return inc
counter = make_counter()
""",
        r="make_counter",
        w="make_counter counter",
        no="count inc",
    ),
    C(
        "decorator-factory",
        """\
def timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[fn.__name__] = time.perf_counter() - t0
        return out
    return wrapper
""",
        r="functools time timings",
        w="timed",
        no="fn wrapper args kwargs t0 out",
    ),
    C(
        "decorated-function",
        """\
@timed
@torch.no_grad()
def predict(batch):
    return model(batch.to(device)).argmax(1)
""",
        r="timed torch model device",
        w="predict",
        no="batch",
    ),
    C(
        "unbound-local-is-not-global",
        """\
def report():
    print(total)
    total = 1
""",
        r="print",
        w="report",
        no="total",
    ),
    C(
        "recursive-function",
        """\
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
fib(20)
""",
        r="fib",
        w="fib",
        no="n",
    ),
    C(
        "generator-function",
        """\
def batches(xs, size=BATCH):
    for i in range(0, len(xs), size):
        yield xs[i:i + size]
""",
        r="BATCH range len",
        w="batches",
        no="xs size i",
    ),
    C(
        "closure-over-loop-variable",
        """\
fns = []
for k in range(3):
    fns.append(lambda: k)
""",
        r="range fns k",
        w="fns k",
    ),
    C(
        "function-annotations-evaluated",
        """\
def collate(batch: list[Sample], pad: int = PAD_ID) -> Batch:
    ids: Tensor = pad_sequence([s.ids for s in batch], padding_value=pad)
    return Batch(ids)
""",
        r="list Sample int PAD_ID Batch pad_sequence",
        w="collate",
        no="Tensor ids s batch pad",
    ),
    C(
        "future-annotations-not-evaluated",
        """\
from __future__ import annotations
def collate(batch: list[Sample]) -> Batch:
    return batch
""",
        w="annotations collate",
        no="Sample Batch list",
    ),
    C(
        "function-try-except-local",
        """\
def safe_load(path):
    try:
        return torch.load(path)
    except (OSError, RuntimeError) as exc:
        warnings.warn(str(exc))
        return None
""",
        r="torch OSError RuntimeError warnings str",
        w="safe_load",
        no="exc path",
    ),
    C(
        "function-imports-are-local",
        """\
def plot_hist(values):
    import matplotlib.pyplot as plt
    plt.hist(values, bins=bins)
""",
        r="bins",
        w="plot_hist",
        no="plt values",
    ),
    C(
        "global-set-seed",
        """\
def set_seed(s):
    global SEED
    SEED = s
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
set_seed(42)
""",
        r="random np torch set_seed",
        w="set_seed SEED",
        no="s",
    ),
    C(
        "global-reset-with-del",
        """\
def reset():
    global history, best, cache
    history = []
    best = None
    del cache
""",
        w="reset history best",
        d="cache",
    ),
    C(
        "global-declared-in-outer-function",
        """\
def outer():
    global registry
    registry = {}
    def inner(k):
        return registry[k]
    return inner
""",
        r="registry",
        w="outer registry",
        no="inner k",
    ),
    # -- control flow, match, try, with, walrus ---------------------------------------
    C(
        "if-elif-device",
        """\
if torch.cuda.is_available():
    device = "cuda"
elif torch.backends.mps.is_available():
    device = "mps"
else:
    device = "cpu"
""",
        r="torch",
        w="device",
    ),
    C(
        "match-event",
        """\
match event:
    case {"type": "click", "pos": (x, y)}:
        handle_click(x, y)
    case {"type": "key", "key": key} if key in HOTKEYS:
        HOTKEYS[key]()
    case Quit():
        running = False
    case [first, *rest]:
        queue.extend(rest)
    case _:
        log(f"unknown event {event!r}")
""",
        r="event handle_click x y key HOTKEYS Quit queue rest log",
        w="x y key running first rest",
    ),
    C(
        "match-shapes",
        """\
match shape:
    case Circle(radius=r) as c:
        area = math.pi * r ** 2
    case Rect(w, h):
        area = w * h
    case {"kind": kind, **extra}:
        area = None
    case Color.RED | Color.GREEN:
        area = 0
""",
        r="shape Circle math r Rect w h Color",
        w="r c area w h kind extra",
    ),
    C(
        "try-except-else-finally",
        """\
try:
    result = risky(payload)
except (ValueError, KeyError):
    result = fallback
else:
    cache[key] = result
finally:
    cleanup()
""",
        r="risky payload ValueError KeyError fallback cache key result cleanup",
        w="result",
    ),
    C(
        "try-star",
        """\
try:
    run_all(jobs)
except* TimeoutError as eg:
    failures.extend(eg.exceptions)
""",
        r="run_all jobs TimeoutError failures eg",
        w="eg",
    ),
    C(
        "with-multiple-items",
        """\
with torch.no_grad(), open(out_path, "w") as out:
    for xb in loader:
        out.write(str(model(xb).tolist()))
""",
        r="torch open out_path loader out str model xb",
        w="out xb",
    ),
    C(
        "walrus-if",
        """\
if (n := len(df)) > max_rows:
    df = df.sample(max_rows, random_state=0)
print(n)
""",
        r="len df max_rows print n",
        w="n df",
    ),
    C(
        "walrus-while",
        """\
while chunk := fh.read(1 << 20):
    digest.update(chunk)
""",
        r="fh digest chunk",
        w="chunk",
    ),
    C(
        "while-else",
        """\
while queue:
    item = queue.pop()
    if item is sentinel:
        break
else:
    print("drained")
""",
        r="queue item sentinel print",
        w="item",
    ),
    # -- output cache, f-strings, misc ------------------------------------------------
    C(
        "output-cache",
        """\
prev = Out[12].shape
delta = _oh[3] - _4
""",
        r="Out _12 _oh _3 _4",
        w="prev delta",
    ),
    C(
        "underscore-last-output",
        """\
result = _ * 2
""",
        r="_",
        w="result",
    ),
    C(
        "fstring-nested-format",
        """\
print(f"{name:>{width}} | {score:.{prec}f} | {items!r}")
""",
        r="print name width score prec items",
    ),
    C(
        "unicode-identifiers",
        """\
λ = 0.5
π_approx = 22 / 7
résultat = λ * π_approx
""",
        r="λ π_approx",
        w="λ π_approx résultat",
    ),
    C(
        "type-alias-and-annotated-module-vars",
        """\
Vector = list[float]
scale: float = 2.0
origin: Vector
""",
        r="list float Vector",
        w="Vector scale",
        no="origin",
    ),
    C(
        "assert-raise",
        """\
assert x.shape == expected_shape, f"got {x.shape}"
if bad:
    raise ValueError(msg)
""",
        r="x expected_shape bad ValueError msg",
    ),
    C(
        "chained-assignment-and-unpacking",
        """\
a = b = c = init()
first, *middle, last = seq
(p, q), r = pairs[0], ratio
""",
        r="init seq pairs ratio",
        w="a b c first middle last p q r",
    ),
    C(
        "slicing-and-ellipsis",
        """\
patch = images[..., y0:y0 + h, x0:x0 + w]
images[:, 0] = mean_img
""",
        r="images y0 h x0 w mean_img",
        w="patch",
    ),
    C(
        "dict-and-set-literals",
        """\
cfg = {**base_cfg, "lr": lr, **overrides}
tags = {*default_tags, extra_tag}
""",
        r="base_cfg lr overrides default_tags extra_tag",
        w="cfg tags",
    ),
    C(
        "starred-call-args",
        """\
out = fn(*args, **kwargs)
""",
        r="fn args kwargs",
        w="out",
    ),
    C(
        "builtins-subset-check",
        """\
print(len(data), max(data), min(data), sorted(set(data))[:5])
""",
        r="data print len",
        exact=False,
    ),
    C(
        "ternary-and-boolops",
        """\
label = "pos" if score > threshold and not flagged else "neg"
""",
        r="score threshold flagged",
        w="label",
    ),
    C(
        "tqdm-progress",
        """\
pbar = tqdm(range(steps), desc="train")
for step in pbar:
    pbar.set_postfix(loss=f"{losses[step]:.3f}")
""",
        r="tqdm range steps pbar losses step",
        w="pbar step",
    ),
    C(
        "yield-in-context-manager",
        """\
@contextlib.contextmanager
def eval_mode(m):
    was_training = m.training
    m.eval()
    try:
        yield m
    finally:
        m.train(was_training)
""",
        r="contextlib",
        w="eval_mode",
        no="m was_training",
    ),
]
