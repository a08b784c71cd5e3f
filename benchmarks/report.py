"""Render ``BENCHMARKS.md`` from the JSON records in ``benchmarks/results/``.

Never edit ``BENCHMARKS.md`` by hand: run the benchmarks, then this script. It reads every
``*.json`` directly in the results folder (not its subfolders, so ``results/smoke/`` stays out),
and writes:

- one accuracy table per dataset: a row per model (and Keras backend), test metrics as
  mean ± std over seeds, the number of seeds, mean training time and epochs;
- the default model against LightGBM and its targets (the previous default's records, in
  ``results/superseded/``, for the comparison with it);
- cost and memory against rows (``scaling.py`` records), with a plot (``scaling.png``);
- one speed table (from ``speed.py`` records): tabattn next to its peer, with ratios;
- the machines and library versions the records came from, and any skipped or failed runs.

Usage::

    python benchmarks/report.py                          # results/ -> BENCHMARKS.md
    python benchmarks/report.py --results /tmp/smoke --out /tmp/BENCHMARKS.md
"""

import argparse
import collections
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

METRICS = {
    "classification": [("accuracy", "accuracy ↑"), ("roc_auc", "ROC AUC ↑"),
                       ("log_loss", "log loss ↓")],
    "regression": [("rmse", "RMSE ↓"), ("mae", "MAE ↓"), ("r2", "R² ↑")],
}
MODEL_ORDER = ["tabattn_auto", "tabattn_tabr", "tabattn_tabm", "tabattn_modernnca", "tabattn_ft",
               "rtdl_ft", "mlp", "lightgbm", "xgboost", "hist_gbdt"]
# The benchmark model that is the estimators' model="auto" (and `tabattn fit`'s default).
DEFAULT_MODEL = "tabattn_auto"
# The estimators' other models, shown next to the default.
ALTERNATIVES = ("tabattn_tabr", "tabattn_tabm", "tabattn_modernnca", "tabattn_ft")
PEER = "lightgbm"
# The harness's protocol budget for tabattn's models (``accuracy.Budget``'s defaults; a test
# checks that they agree): early stopping with patience 16, no time limit, the estimators'
# own batch size and configuration.
PROTOCOL_BUDGET = {"epochs": 1000, "patience": 16, "tabattn_batch_size": "auto",
                   "time_limit": None, "tabr_config": None, "tabm_config": None,
                   "modernnca_config": None}
# Budget fields that records written before they existed lack (read as None).
LATER_BUDGET_FIELDS = ("modernnca_config",)
UNITS = {"california_housing": "target in units of $100k", "diamonds": "target in USD"}
# Records of models that the current ones replaced: not in the tables, read only for the
# comparison with the previous default model.
SUPERSEDED_DIR = "superseded"
PREVIOUS_DEFAULT = "tabattn_tabr@nolimit"
# The default model's targets: a whole fit within FIT_SECONDS + ROW_SECONDS per 1,000
# training rows on every table, LightGBM beaten on at least MIN_WINS tables, one-row latency,
# and how an epoch's cost grows with rows (benchmarks/scaling.py).
FIT_SECONDS, ROW_SECONDS, MIN_WINS = 30.0, 5.0, 4
LATENCY_MS, MAX_EXPONENT, MAX_EPOCH_SECONDS, MAX_PEAK_MIB = 1.0, 1.1, 600.0, 8 * 1024


def load_records(directory):
    records = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
        record["_file"] = os.path.basename(path)
        records.append(record)
    return records


def mean_std(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5  # sample std over seeds
    return mean, std


def fmt(values, digits=4):
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def model_name(record):
    """The model's name, with the tag of a set of runs kept apart (``--tag``)."""
    return record["model"] + (f"@{record['tag']}" if record.get("tag") else "")


def model_label(record):
    label = model_name(record)
    if record.get("keras_model"):
        label += f" ({record['backend']})"
    return label


def _order(label):
    model = label.split(" ")[0].split("@")[0]
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), label)


def _cores(record):
    machine = record.get("machine") or {}
    return machine.get("thread_limit") or machine.get("cpu_count_usable") or "?"


def budget(record):
    """The training budget of a run: time limit per fit (shared by an ensemble's models)
    and the cores it could use."""
    limit = (record.get("budget") or {}).get("time_limit")
    cores = _cores(record)
    neural = record["model"] not in ("lightgbm", "xgboost", "hist_gbdt")
    time_part = f"{limit:.0f} s" if (limit and neural) else "until early stop"
    models = record.get("ensemble_size", 1)
    if models > 1:
        time_part += f" for {models} models" if (limit and neural) else f", {models} models"
    return f"{time_part}, {cores} core{'s' if cores != 1 else ''}"


def ok_accuracy(records):
    return [r for r in records if r.get("kind") == "accuracy" and r.get("status") == "ok"]


def alternative(runs, metric, digits):
    if not runs:
        return "–"
    return f"{mean_std([r['metrics'][metric] for r in runs])[0]:.{digits}f}"


def _protocol(runs):
    """Whether every run had the harness's protocol budget (and the full data)."""
    return all(
        not r.get("smoke") and all(
            (k in (r.get("budget") or {}) or k in LATER_BUDGET_FIELDS)
            and (r.get("budget") or {}).get(k) == v
            for k, v in PROTOCOL_BUDGET.items())
        for r in runs)


def _compare(ours, peer):
    """``(ours, peer, metric, mean ours, mean peer, tie, ours better)`` over the seeds both
    have, or None without a shared seed."""
    seeds = {r["seed"] for r in ours} & {r["seed"] for r in peer}
    if not seeds:
        return None
    ours = [r for r in ours if r["seed"] in seeds]
    peer = [r for r in peer if r["seed"] in seeds]
    metric = "accuracy" if ours[0]["task"] == "classification" else "rmse"
    a, _ = mean_std([r["metrics"][metric] for r in ours])
    b, _ = mean_std([r["metrics"][metric] for r in peer])
    tie = abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)  # means summed in another order
    better = not tie and (a > b if metric == "accuracy" else a < b)
    return ours, peer, metric, a, b, tie, better


def _wins_ties(compared):
    return (sum(c[6] for c in compared.values()), sum(c[5] for c in compared.values()))


def _digits(metric, value):
    return 4 if metric == "accuracy" or abs(value) < 100 else 1


def _per_fit(runs):
    """The time limit per fit and the cores of several runs, e.g. ``no time limit, 2
    cores``."""
    limits = sorted({(r.get("budget") or {}).get("time_limit") or 0 for r in runs})
    times = " or ".join(f"{t:.0f} s per fit" if t else "no time limit" for t in limits)
    counts = sorted({str(_cores(r)) for r in runs})
    return f"{times}, {' or '.join(counts)} core{'' if counts == ['1'] else 's'}"


def seconds_limit(record):
    """The time target of a fit: ``FIT_SECONDS`` + ``ROW_SECONDS`` per 1,000 training rows."""
    return FIT_SECONDS + ROW_SECONDS * record["rows"]["train"] / 1000


def _runs_by(records, model, backend="jax", tag=None):
    runs = collections.defaultdict(list)
    for r in ok_accuracy(records):
        if r["model"] == model and r.get("tag") == tag and (
                not r.get("keras_model") or r.get("backend") == backend):
            runs[r["dataset"]].append(r)
    return runs


def default_model_section(records, default_model, previous=()):
    """The estimators' default model against LightGBM (its untagged JAX runs), the other
    estimator models, the previous default (``previous``: superseded records), and the
    targets."""
    ours = _runs_by(records, default_model)
    peer = _runs_by(records, PEER)
    compared = {d: c for d in sorted(ours) if (c := _compare(ours[d], peer.get(d, [])))}
    if not compared:
        return []
    alternatives = {m: _runs_by(records, m) for m in ALTERNATIVES}
    alternatives = {m: runs for m, runs in alternatives.items() if runs}
    before = _runs_by(previous, *PREVIOUS_DEFAULT.split("@")[:1],
                      tag=PREVIOUS_DEFAULT.split("@")[1]) if previous else {}
    runs = [r for c in compared.values() for r in c[0]]
    budgets = ("Both trained with early stopping on the validation split and no time limit "
               "(tabattn for its default number of epochs, `epochs=\"auto\"`: 30 annealed "
               "epochs for TabR on classification and 40 on regression, until early stopping "
               "for TabM): the harness's protocol, and what the estimators do by default."
               if _protocol(runs) else
               "The default model's runs did not all have the harness's protocol budget: "
               "see the `budget` column of the dataset tables.")
    columns = list(alternatives) + (["previous default"] if before else [])
    lines = [
        f"## Default model: `{default_model}` against LightGBM",
        "",
        "`model=\"auto\"` (and `tabattn fit`) trains the model benchmarked as "
        f"`{default_model}` ({_per_fit(runs)}). Mean test metric over the seeds both have, "
        "same splits; accuracy for classification (higher is better), RMSE for regression "
        "(lower is better); training time is the mean wall time of one fit, and per 1,000 "
        "training rows. " + budgets + " The last columns give the estimators' other models "
        + ("and the previous default (TabR searching every stored row at every step, "
           "superseded; its runs are kept in `benchmarks/results/superseded/`; mean over all "
           "its seeds) " if before else "") + "on the same seeds where they ran.",
        "",
        f"| dataset | metric | {default_model} | LightGBM | difference | better | seeds "
        "| train (s) | s per 1,000 rows | LightGBM train (s) | " + " | ".join(columns) + " |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(columns),
    ]
    for dataset, (mine, theirs, metric, a, b, tie, better) in compared.items():
        digits = _digits(metric, b)
        seconds = mean_std([r["train_seconds"] for r in mine])[0]
        per_1000 = seconds / (mine[0]["rows"]["train"] / 1000)
        seeds = {r["seed"] for r in mine}
        cells = []
        for model in alternatives:
            other = [r for r in alternatives[model].get(dataset, []) if r["seed"] in seeds]
            cells.append(alternative(other, metric, digits))
        if before:
            cells.append(alternative(before.get(dataset, []), metric, digits))
        lines.append(
            f"| {dataset} | {metric} | {a:.{digits}f} | {b:.{digits}f} | {a - b:+.{digits}f} | "
            f"{'tie' if tie else 'tabattn' if better else 'LightGBM'} | {len(seeds)} | "
            f"{seconds:.1f} | "
            f"{per_1000:.1f} | {mean_std([r['train_seconds'] for r in theirs])[0]:.1f} | "
            + " | ".join(cells) + " |"
        )
    wins, ties = _wins_ties(compared)
    tied = f" and ties on {ties}" if ties else ""
    lines += ["", f"tabattn's default model (JAX backend, {_per_fit(runs)}) beats LightGBM on "
              f"{wins} of {len(compared)} datasets{tied}.", ""]
    lines += targets_lines(compared, peer, records, before)
    lines += other_runs_lines(records, default_model, peer)
    return lines


def other_runs_lines(records, default_model, peer):
    """The default model's tagged runs (other settings) against LightGBM."""
    lines = []
    tags = sorted({r["tag"] for r in ok_accuracy(records)
                   if r["model"] == default_model and r.get("tag")})
    for tag in tags:
        for dataset, runs in sorted(_runs_by(records, default_model, tag=tag).items()):
            result = _compare(runs, peer.get(dataset, []))
            if result is None:
                continue
            ours, _, metric, a, b, tie, better = result
            digits = _digits(metric, b)
            verdict = "tie" if tie else "tabattn better" if better else "LightGBM better"
            seeds = f"{len(ours)} seed{'s' if len(ours) > 1 else ''}"
            lines.append(f"- `{default_model}@{tag}` on {dataset} ({budget(ours[0])}, {seeds}): "
                         f"{metric} {a:.{digits}f} against LightGBM's {b:.{digits}f} "
                         f"({verdict}).")
    if not lines:
        return []
    return ["The default model's runs with other settings (not counted above; see the notes "
            "on the records):", "", *lines, ""]


def _verdict(ok):
    return "**reached**" if ok else "**not reached**"


def targets_lines(compared, peer, records, before):
    """The default model's targets, each with what the records measured and whether it is
    reached."""
    lines = ["Targets of the default model, from the records above and below:", ""]
    over = []
    for dataset, (ours, _, metric, *_) in compared.items():
        seconds = mean_std([r["train_seconds"] for r in ours])[0]
        limit = seconds_limit(ours[0])
        over += [dataset] if seconds > limit else []
        lines.append(f"- {dataset}: a whole fit in {seconds:.0f} s, against at most "
                     f"{limit:.0f} s ({FIT_SECONDS:.0f} s + {ROW_SECONDS:.0f} s per 1,000 of "
                     f"its {ours[0]['rows']['train']:,} training rows): "
                     f"{_verdict(seconds <= limit)}.")
    total = len(set(peer))  # a dataset without a default-model run counts as not beaten
    wins, _ = _wins_ties(compared)
    missing = f" ({total - len(compared)} without a run of the default model)" if (
        total > len(compared)) else ""
    lines.append(f"- Beats LightGBM on at least {MIN_WINS} of the datasets: {wins} of "
                 f"{total}{missing}: {_verdict(wins >= MIN_WINS)}.")
    if before:
        worse = []
        for dataset, (ours, _, metric, a, *_rest) in compared.items():
            previous = before.get(dataset)
            if not previous:
                continue
            mean, std = mean_std([r["metrics"][metric] for r in previous])
            std = std or 0.0
            if (a < mean - std) if metric == "accuracy" else (a > mean + std):
                digits = _digits(metric, mean)
                worse.append(f"{dataset} ({a:.{digits}f} against {mean:.{digits}f} ± "
                             f"{std:.{digits}f})")
        lines.append("- Not worse than the previous default by more than one seed standard "
                     "deviation on any dataset: "
                     + (f"worse on {', '.join(worse)}: " if worse else "")
                     + f"{_verdict(not worse)}.")
    latency = [r for r in records if r.get("kind") == "speed_model" and r.get("status") == "ok"
               and r.get("implementation") in ("tabattn TabR", "tabattn TabM")
               and r.get("backend") == "jax" and not r.get("smoke")]
    for record in sorted(latency, key=lambda r: r["implementation"]):
        ms = record["latency_ms_batch_1"]
        stored = (f", {record['context_rows']:,} stored rows" if record.get("context_rows")
                  else "")
        lines.append(f"- One-row prediction latency ≤ {LATENCY_MS:g} ms on JAX, "
                     f"{record['implementation']}{stored}: {ms:.2f} ms: "
                     f"{_verdict(ms <= LATENCY_MS)}.")
    lines += scaling_target_lines(records)
    return lines + [""]


def scaling_target_lines(records):
    """The default model's epoch cost against rows (``scaling.py`` records)."""
    runs = _scaling_runs(records).get(DEFAULT_MODEL, {})
    points = {n: r["epoch_seconds"] for n, r in runs.items() if r.get("epoch_seconds")}
    if len(points) < 2:
        return []
    exponent = fitted_exponent(points)
    lines = [f"- An epoch's cost grows at most linearly with training rows: fitted exponent "
             f"{exponent:.2f} from {min(points):,} to {max(points):,} rows (at most "
             f"{MAX_EXPONENT}): {_verdict(exponent <= MAX_EXPONENT)}."]
    largest = runs[max(points)]
    if max(points) >= 1_000_000:
        seconds, mib = largest["epoch_seconds"], largest["peak_rss_mib"]
        lines.append(
            f"- One epoch of {max(points):,} rows ({largest['n_features']} columns) within "
            f"{MAX_EPOCH_SECONDS / 60:.0f} minutes with peak memory under "
            f"{MAX_PEAK_MIB / 1024:.0f} GiB: {seconds:.0f} s, {mib / 1024:.1f} GiB: "
            f"{_verdict(seconds <= MAX_EPOCH_SECONDS and mib <= MAX_PEAK_MIB)}.")
    return lines


def _scaling_runs(records):
    """``{model: {rows: record}}`` of the successful ``scaling.py`` records."""
    runs = collections.defaultdict(dict)
    for r in records:
        if r.get("kind") == "scaling" and r.get("status") == "ok":
            runs[r["model"]][r["rows"]] = r
    return runs


def fitted_exponent(points):
    """The least-squares slope ``b`` of ``log(cost) = log(a) + b log(rows)``; ``points`` maps
    rows to cost."""
    xs = [math.log(n) for n in points]
    ys = [math.log(points[n]) for n in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def scaling_section(records, plot_path=None, link=None):
    """Cost and memory against rows, per model; draws the plot to ``plot_path``."""
    runs = _scaling_runs(records)
    if not runs:
        return []
    smoke = any(r.get("smoke") for model in runs.values() for r in model.values())
    first = next(iter(next(iter(runs.values())).values()))
    lines = [
        "## Cost against rows" + (" (smoke run: tiny models; not a result)" if smoke else ""),
        "",
        f"`benchmarks/scaling.py`: a synthetic table of {first['n_features']} columns, one "
        "worker process per model and size. Epoch: one training epoch with its validation "
        "(a quarter as many rows), after the first (which compiles); fit: the estimator's "
        "default epochs with early stopping (patience 16); peak: the worker's peak resident "
        "memory, data included. "
        "LightGBM: a fit to early stopping (its rounds in the epochs column). The exponent "
        "is the slope of log(cost) against log(rows), per epoch (LightGBM: per fit).",
        "",
    ]
    if plot_path and _plot_scaling(runs, plot_path):
        lines += [f"![Cost against training rows]({link or plot_path})", ""]
    lines += ["| model | rows | epoch (s) | fit (s) | epochs | peak memory (MiB) |",
              "|---|---|---|---|---|---|"]
    exponents = []
    for model in sorted(runs, key=_order):
        for n, r in sorted(runs[model].items()):
            epoch, fit = _seconds(r.get("epoch_seconds")), _seconds(r.get("fit_seconds"))
            lines.append(f"| {model} | {n:,} | {epoch} | {fit} | {r.get('epochs', '–')} | "
                         f"{r['peak_rss_mib']:.0f} |")
        cost = {n: r.get("epoch_seconds") or r.get("fit_seconds") for n, r in runs[model].items()}
        cost = {n: c for n, c in cost.items() if c}
        if len(cost) > 1:
            exponents.append(f"{model} {fitted_exponent(cost):.2f}")
    if exponents:
        lines += ["", "Fitted exponents: " + ", ".join(exponents) + "."]
    return lines + [""]


def _seconds(value):
    return "–" if value is None else f"{value:.1f}"


def _plot_scaling(runs, path):
    """Epoch (or fit) seconds against rows on log-log axes; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, model in enumerate(sorted(runs, key=_order)):
        points = sorted(runs[model].items())
        epoch = [(n, r["epoch_seconds"]) for n, r in points if r.get("epoch_seconds")]
        fit = [(n, r["fit_seconds"]) for n, r in points if r.get("fit_seconds")]
        for ax, series in ((axes[0], epoch), (axes[1], fit)):
            if series:  # a model keeps its colour in both panels
                ax.plot(*zip(*series), marker="o", label=model, color=colors[i % len(colors)])
    for ax, title in zip(axes, ("seconds per epoch", "seconds per fit (early stopping)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training rows")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend()
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def accuracy_section(records):
    lines = []
    ok = [r for r in records if r.get("kind") == "accuracy" and r.get("status") == "ok"]
    by_dataset = collections.defaultdict(list)
    for record in ok:
        by_dataset[record["dataset"]].append(record)
    for dataset in sorted(by_dataset):
        rows = by_dataset[dataset]
        first = rows[0]
        task = first["task"]
        smoke = any(r.get("smoke") for r in rows)
        sizes = first["rows"]
        split = "official test split" if first.get("official_split") else "random 64/16/20"
        note = f"; {UNITS[dataset]}" if dataset in UNITS else ""
        lines += [
            f"### {dataset}" + (" (smoke run: tiny subset, not a result)" if smoke else ""),
            "",
            f"{task}, target `{first['target']}`{note}; {sizes['total']:,} rows "
            f"(train {sizes['train']:,} / validation {sizes['validation']:,} / "
            f"test {sizes['test']:,}, {split}), {first['n_features']} features.",
            "",
        ]
        metrics = METRICS[task]
        lines.append("| model | " + " | ".join(h for _, h in metrics)
                     + " | seeds | train time (s) | epochs / rounds | budget |")
        lines.append("|---" * (len(metrics) + 5) + "|")
        by_model = collections.defaultdict(list)
        for record in rows:
            by_model[model_label(record)].append(record)
        for label in sorted(by_model, key=_order):
            runs = by_model[label]
            cells = [fmt([r["metrics"][m] for r in runs if m in r["metrics"]]) for m, _ in metrics]
            cells += [
                str(len(runs)),
                fmt([r["train_seconds"] for r in runs], 1),
                fmt([float(r["epochs"]) for r in runs], 1),
                budget(runs[0]),
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def speed_section(records):
    rows = [r for r in records if r.get("kind") == "speed" and r.get("status") == "ok"]
    if not rows:
        return []
    smoke = any(r.get("smoke") for r in rows)
    lines = [
        "## Speed" + (" (smoke run: tiny sizes, 2 calls; not a result)" if smoke else ""),
        "",
        "Median time per call after warm-up (jit where the backend has it), tabattn next to "
        "its peer in the same process; ratio = tabattn / peer (below 1: tabattn is faster).",
        "",
        "| case | input | pass | backend | tabattn (ms) | peer | peer (ms) | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["case"], r["pass"], r["backend"])):
        peer_ms = r.get("peer_ms")
        ratio = f"{r['tabattn_ms'] / peer_ms:.2f}" if peer_ms else "–"
        peer = r.get("peer") or "–"
        peer_cell = f"{peer_ms:.3f}" if peer_ms else (r.get("peer_reason") or "–")
        lines.append(
            f"| {r['case']} | {r.get('input', '')} | {r['pass']} | {r['backend']} | "
            f"{r['tabattn_ms']:.3f} | {peer} | {peer_cell} | {ratio} |"
        )
    lines.append("")
    extras = [r for r in records if r.get("kind") == "speed_model" and r.get("status") == "ok"]
    if extras:
        lines += [
            "### Models",
            "",
            "FT-Transformer (paper default config) next to rtdl's; TabR and TabM as the "
            "estimators configure them, on 26,048 training rows (Adult's training split "
            "size; TabR stores at most 16,384 of them), next to TabR searching every stored "
            "row with every key recomputed at each step (the paper's way, with 32 "
            "neighbours), the papers' sizes, and `mixed_bfloat16`, each "
            "trained the same way in the same process. "
            "Rows: the implementation, the framework it ran on, and the Keras backend of the "
            "process it was measured in. GFLOP/s count the matmuls analytically; the share is "
            "of the float32 matmul rate measured in the same process. Peak RSS is the whole "
            "process's, after training.",
            "",
            "| implementation | framework | process backend | train rows/s "
            "| latency batch 1 (ms) | latency batch 4096 (ms) "
            "| train GFLOP/s of matmul GFLOP/s | share of matmul peak | peak RSS (MiB) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(extras, key=lambda r: (r["implementation"], r["backend"])):
            share = r.get("fraction_of_matmul_peak")
            gflops = (f"{r['train_gflops']:.1f} of {r['matmul_gflops']:.0f}"
                      if r.get("train_gflops") else "–")
            lines.append(
                f"| {r['implementation']} | {r.get('framework', '')} | {r['backend']} | "
                f"{r['train_rows_per_s']:.0f} | "
                f"{r['latency_ms_batch_1']:.2f} | {r['latency_ms_batch_4096']:.1f} | "
                f"{gflops} | "
                f"{'–' if share is None else f'{share:.1%}'} | "
                f"{r.get('peak_rss_mib', float('nan')):.0f} |"
            )
        lines.append("")
    return lines


def machines_section(records):
    lines = ["## Machines and versions", ""]
    seen = collections.OrderedDict()
    for record in records:
        machine = record.get("machine") or {}
        key = json.dumps([machine.get("cpu_model"), machine.get("cpu_count_usable"),
                          record.get("versions")], sort_keys=True)
        entry = seen.setdefault(key, {"machine": machine, "versions": record.get("versions"),
                                      "backends": set(), "n": 0})
        entry["backends"].add(record.get("backend"))
        entry["n"] += 1
    for entry in seen.values():
        machine = entry["machine"]
        versions = ", ".join(f"{k} {v}" for k, v in sorted((entry["versions"] or {}).items()))
        lines.append(
            f"- {entry['n']} records, backends "
            f"{', '.join(sorted(b for b in entry['backends'] if b))}: "
            f"{machine.get('cpu_model')}, {machine.get('cpu_count_usable')} usable of "
            f"{machine.get('cpu_count')} cores, {machine.get('platform')}, Python "
            f"{machine.get('python')}, GPU: {machine.get('gpu') or 'none'}. {versions}."
        )
    lines.append("")
    return lines


def notes_section(records):
    """The ``note`` of each model whose records carry one (e.g. runs of an older code); where
    a model's records carry different notes, each names its datasets."""
    notes = collections.OrderedDict()
    for record in ok_accuracy(records):
        if record.get("note"):
            notes.setdefault((model_name(record), record["note"]), set()).add(record["dataset"])
    if not notes:
        return []
    per_model = collections.Counter(model for model, _ in notes)
    lines = ["## Notes on the records", ""]
    for (model, note), datasets in sorted(notes.items(), key=lambda item: _order(item[0][0])):
        where = f" (on {', '.join(sorted(datasets))})" if per_model[model] > 1 else ""
        lines.append(f"- `{model}`{where}: {note}")
    return lines + [""]


def problems_section(records):
    lines = []
    for record in records:
        if record.get("status") == "skipped":
            what = f"{record.get('dataset', '')} {record.get('model', record.get('case'))}"
            lines.append(f"- skipped: {what}"
                         f": {record.get('reason')}")
        elif record.get("status") == "error":
            lines.append(f"- error: {record['_file']}: {record.get('error')}")
    return ["## Skipped and failed runs", "", *lines, ""] if lines else []


def streaming_section(runs):
    """``benchmarks/streaming.py``'s runs (``results/streaming/runs.json``): the streamed fit
    against the in-memory one. Runs of a superseded read-ahead are left out."""
    if not runs:
        return []
    latest = max(runs, key=lambda r: r.get("run", 0))
    first = min(r.get("run", 0) for r in runs
                if r.get("readahead_batches") == latest.get("readahead_batches"))
    runs = [r for r in runs if r.get("run", 0) >= first]
    lines = [
        "## Tables larger than memory",
        "",
        "`benchmarks/streaming.py`: a synthetic table of 20 feature columns (15 numeric, 5 "
        "categorical of 10 categories) and a binary target, as Parquet files of 250,000 rows; "
        "the default estimator (`TabularClassifier(epochs=1, random_state=0)`: TabR) fitted on "
        "the folder read in batches (`stream`) and on the table read with pandas (`memory`), "
        "each in its own worker process, JAX, 2 CPU cores shared with other work (the rows per "
        "second of two runs of one mode differ by up to 1.4x)."
        f" Steps: training steps of {runs[0]['batch_size']} rows, the whole epoch's "
        "(epoch) or as many as `--max-steps` allowed; rows/s over the steps after the first "
        "20; peak: the worker's `ru_maxrss`.",
        "",
        "| rows | mode | steps | train rows/s | whole fit (s) | peak memory (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["rows"], r["mode"] != "memory", r.get("run", 0))):
        steps_taken = f"{r['steps']:,}" + ("" if r.get("max_steps") else " (epoch)")
        lines.append(
            f"| {r['rows']:,} | {r['mode']} | {steps_taken} | {r['train_rows_per_s']:.0f} | "
            f"{r['fit_seconds']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        "The streamed fit's memory does not grow with rows (a preprocessing sample of 100,000 "
        "rows, a shuffle buffer of 65,536 rows, two record batches read ahead), and its rows "
        "per second are close to the in-memory fit's (a background thread "
        "preprocesses about 57,000 rows/s, against a few thousand rows/s of TabR training).",
        "",
    ]
    return lines


def load_streaming_runs(directory):
    path = os.path.join(directory, "streaming", "runs.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def render(records, source, previous=(), plot_path=None, plot_link=None, streaming_runs=()):
    started = sorted(r.get("started") for r in records if r.get("started"))
    lines = [
        "# Benchmarks",
        "",
        f"<!-- Generated by benchmarks/report.py from {source}/*.json; do not edit by hand. -->",
        "",
        f"Generated from {len(records)} records"
        + (f", runs from {started[0]} to {started[-1]}" if started else "")
        + ". Protocol: `benchmarks/accuracy.py` (module docstring); test metrics as mean ± "
        "sample standard deviation over seeds; an ensemble's epochs are summed over its "
        "models.",
        "",
    ]
    lines += default_model_section(records, DEFAULT_MODEL, previous)
    accuracy = accuracy_section(records)
    if accuracy:
        lines += ["## Accuracy", "", *accuracy]
    lines += scaling_section(records, plot_path, plot_link)
    lines += streaming_section(list(streaming_runs))
    lines += speed_section(records)
    lines += machines_section(records)
    lines += notes_section(records)
    lines += problems_section(records)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=_common.DEFAULT_RESULTS_DIR)
    parser.add_argument("--out", default=os.path.join(_common.REPO_ROOT, "BENCHMARKS.md"))
    parser.add_argument("--plot", help="PNG of the cost against rows (default: scaling.png in "
                        "the results folder)")
    args = parser.parse_args(argv)
    records = load_records(args.results)
    if not records:
        print(f"No records in {args.results}; run benchmarks/accuracy.py first", file=sys.stderr)
        return 1
    previous = load_records(os.path.join(args.results, SUPERSEDED_DIR))
    plot = args.plot or os.path.join(args.results, "scaling.png")
    link = os.path.relpath(plot, os.path.dirname(os.path.abspath(args.out)))
    source = os.path.relpath(args.results, _common.REPO_ROOT)
    if source.startswith(".."):
        source = args.results
    text = render(records, source, previous, plot, link, load_streaming_runs(args.results))
    with open(args.out, "w", encoding="utf-8") as file:
        file.write(text)
    print(f"Wrote {args.out} from {len(records)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
