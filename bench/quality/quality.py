"""Progressive-validation quality of eddy against River and Vowpal Wabbit on the same streams.

Each data set is written once as JSON Lines; every tool reads the same events in the same order,
predicts each one before learning it, and is scored with the same metric code (this file's, not
each tool's), so the numbers are comparable. Events/s are end-to-end for eddy (a process reading
the file) and in-process for River and VW (Python loop over already-parsed dicts), which flatters
the Python tools.

Usage: bench/quality/run (creates the virtual environment and builds eddy first).
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time

from river import compose, datasets, linear_model, optim, preprocessing
from sklearn import datasets as skdata
import vowpalwabbit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDDY = os.path.join(ROOT, "target", "release", "eddy")
OUT = os.path.join(ROOT, "bench", "out")


def phishing():
    for x, y in datasets.Phishing():
        yield {k: float(v) for k, v in x.items()}, 1.0 if y else 0.0


def trump():
    for x, y in datasets.TrumpApproval():
        yield {k: float(v) for k, v in x.items()}, float(y)


def hyperplane(n=100_000):
    gen = datasets.synth.Hyperplane(seed=42, n_features=10)
    for x, y in gen.take(n):
        yield {f"x{k}": float(v) for k, v in x.items()}, float(y)


def friedman(n=20_000):
    for x, y in datasets.synth.Friedman(seed=42).take(n):
        yield {f"x{k}": float(v) for k, v in x.items()}, float(y)


def diabetes():
    d = skdata.load_diabetes()
    for row, y in zip(d.data, d.target):
        yield {f"x{i}": float(v) for i, v in enumerate(row)}, float(y)


def breast_cancer():
    d = skdata.load_breast_cancer()
    for row, y in zip(d.data, d.target):
        yield {f"x{i}": float(v) for i, v in enumerate(row)}, float(y)


def digits():
    d = skdata.load_digits()
    for row, y in zip(d.data, d.target):
        yield {f"x{i}": float(v) for i, v in enumerate(row)}, int(y)


def wine():
    d = skdata.load_wine()
    for row, y in zip(d.data, d.target):
        yield {f"x{i}": float(v) for i, v in enumerate(row)}, int(y)


SETS = [
    ("phishing", phishing, "binary"),
    ("breast_cancer", breast_cancer, "binary"),
    ("hyperplane_100k", hyperplane, "binary"),
    ("trump_approval", trump, "regression"),
    ("friedman_20k", friedman, "regression"),
    ("diabetes", diabetes, "regression"),
    ("digits", digits, "multiclass"),
    ("wine", wine, "multiclass"),
]


class Score:
    """The metric every tool is judged by: log loss (binary) or MAE and RMSE (regression)."""

    def __init__(self, task):
        self.task, self.n, self.a, self.b = task, 0, 0.0, 0.0

    def add(self, y, p):
        self.n += 1
        if self.task == "multiclass":
            self.b += str(p) == str(y)
        elif self.task == "binary":
            p = min(max(p, 1e-15), 1 - 1e-15)
            self.a -= y * math.log(p) + (1 - y) * math.log(1 - p)
            self.b += (p >= 0.5) == (y == 1.0)
        else:
            self.a += abs(y - p)
            self.b += (y - p) ** 2

    def result(self):
        if self.task == "multiclass":
            return {"accuracy": self.b / self.n}
        if self.task == "binary":
            return {"logloss": self.a / self.n, "accuracy": self.b / self.n}
        return {"mae": self.a / self.n, "rmse": math.sqrt(self.b / self.n)}


def run_eddy(path, task):
    fd, summary = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    preds = summary + ".predictions.jsonl"
    model = {"binary": "logistic", "regression": "linear", "multiclass": "softmax"}[task]
    start = time.perf_counter()
    subprocess.run(
        [EDDY, "run", "--quiet", "--input", path, "--target", "y", "--model", model,
         "--predictions", preds, "--summary-json", summary],
        check=True,
    )
    seconds = time.perf_counter() - start
    ys = [json.loads(line)["y"] for line in open(path)]
    score = Score(task)
    for y, line in zip(ys, open(preds)):
        p = json.loads(line)["prediction"]
        score.add(y, p["label"] if task == "multiclass" else p)
    os.remove(summary)
    os.remove(preds)
    return score.result(), len(ys) / seconds


def run_river(events, task):
    if task == "multiclass":
        model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.SoftmaxRegression())
        score = Score(task)
        start = time.perf_counter()
        for x, y in events:
            score.add(y, model.predict_one(x))
            model.learn_one(x, y)
        return score.result(), len(events) / (time.perf_counter() - start)
    if task == "binary":
        model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    else:
        model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LinearRegression())
    score = Score(task)
    start = time.perf_counter()
    for x, y in events:
        if task == "binary":
            p = model.predict_proba_one(x).get(True, 0.5)
            model.learn_one(x, y == 1.0)
        else:
            p = model.predict_one(x)
            model.learn_one(x, y)
        score.add(y, p)
    return score.result(), len(events) / (time.perf_counter() - start)


def run_vw(events, task):
    if task == "multiclass":
        classes = sorted({y for _, y in events})
        ws = vowpalwabbit.Workspace(f"--quiet --oaa {len(classes)}")
        score = Score(task)
        start = time.perf_counter()
        for x, y in events:
            feats = " ".join(f"{k}:{v}" for k, v in x.items())
            p = ws.predict(f"| {feats}")
            ws.learn(f"{classes.index(y) + 1} | {feats}")
            score.add(y, classes[int(p) - 1])
        ws.finish()
        return score.result(), len(events) / (time.perf_counter() - start)
    args = "--quiet --loss_function logistic --link logistic" if task == "binary" else "--quiet"
    ws = vowpalwabbit.Workspace(args)
    score = Score(task)
    start = time.perf_counter()
    for x, y in events:
        feats = " ".join(f"{k}:{v}" for k, v in x.items())
        label = (1 if y == 1.0 else -1) if task == "binary" else y
        p = ws.predict(f"| {feats}")
        ws.learn(f"{label} | {feats}")
        score.add(y, p)
    ws.finish()
    return score.result(), len(events) / (time.perf_counter() - start)


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for name, make, task in SETS:
        events = list(make())
        path = os.path.join(OUT, f"{name}.jsonl")
        with open(path, "w") as f:
            for x, y in events:
                f.write(json.dumps({**x, "y": y}) + "\n")
        results = {"eddy": run_eddy(path, task), "river": run_river(events, task), "vw": run_vw(events, task)}
        rows.append((name, task, len(events), results))
        print(name, {k: v for k, v in results.items()}, file=sys.stderr)

    lines = ["| data set | events | metric | eddy | River | VW | eddy ev/s | River ev/s | VW ev/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, task, n, r in rows:
        metric = {"binary": "logloss", "regression": "mae", "multiclass": "accuracy"}[task]
        pick = max if metric == "accuracy" else min
        best = pick(r[t][0][metric] for t in r)
        cells = []
        for tool in ("eddy", "river", "vw"):
            v = r[tool][0][metric]
            cells.append(f"**{v:.4f}**" if v == best else f"{v:.4f}")
        speeds = [f"{r[t][1]:,.0f}" for t in ("eddy", "river", "vw")]
        lines.append(f"| {name} | {n} | {metric} | " + " | ".join(cells + speeds) + " |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(ROOT, "bench", "quality", "results.md"), "w") as f:
        f.write("# Progressive quality: eddy vs River vs Vowpal Wabbit\n\n")
        f.write("Generated by `bench/quality/run`. Log loss and MAE: lower is better; accuracy: "
                "higher is better; best per row in bold. River: "
                "StandardScaler | LogisticRegression/LinearRegression (defaults). VW: defaults "
                "(logistic loss and link for binary). eddy: quick mode defaults. eddy's events/s "
                "include process start and JSON parsing; River's and VW's are in-process loops over "
                "parsed events.\n\n")
        f.write(table + "\n")


if __name__ == "__main__":
    main()
