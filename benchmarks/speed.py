"""Speed benchmark: tabattn layers next to their KerasFactory / Keras peers, and FT-Transformer
next to rtdl's PyTorch FT-Transformer, in the same process on the current ``KERAS_BACKEND``.

Layers: median milliseconds per call after warm-up, for the forward pass (``training=False``)
and forward + backward (gradient of the sum of the outputs with respect to the trainable
weights and the inputs, as inside a network; ``training=True``). JAX: ``jax.jit`` over the
layer called in a ``keras.StatelessScope``; TensorFlow: ``tf.function(jit_compile=True)``
(XLA), falling back to a plain ``tf.function`` where XLA fails; PyTorch: eager
(``torch.compile`` is not used). Each record holds the tabattn time, the peer's time measured
right after it, and the ratio tabattn / peer.

Model: the paper-default FT-Transformer on a synthetic table (8 numeric columns, 8
categorical columns of 10 categories, as Adult-sized inputs): training throughput in rows/s
(batch 256, AdamW), inference latency for batch 1 and 4096, the training step's achieved
GFLOP/s (matmul FLOPs counted analytically, backward = 2 × forward) as a share of the machine's
float32 matmul GFLOP/s (2048 × 2048, measured in the same run on the same backend), and the
process's peak RSS after training. rtdl's FT-Transformer (PyTorch, eager) is measured in the same
process with the same sizes. TabR and TabM, configured as the estimators build them, on
26,048 synthetic training rows (Adult's training split size; TabR stores at most 16,384 of them
and searches them exactly, skipping each row's own): training throughput and latency for batch
1 and 4096 (no peer: no other Keras or PyTorch library ships them); next to TabR searching
every stored row with every key recomputed at each step (the paper's way, with 32 neighbours:
the estimators' previous setting), the papers' sizes (TabR-S: ``d_main`` 265, 96 neighbours,
no numeric embeddings; TabM: 32 members, 2 blocks of 512), and the estimators' TabR and TabM
under the ``mixed_bfloat16`` policy, all trained the same way in the same process.

Run once per backend (each writes its own records)::

    for b in jax torch tensorflow; do KERAS_BACKEND=$b python benchmarks/speed.py; done
    python benchmarks/speed.py --smoke --out /tmp/speed-smoke     # tiny sizes, a few calls

Records go to ``--out`` (default ``benchmarks/results``), one JSON file per case and backend;
``benchmarks/report.py`` renders them. A missing peer library (``pip install 'tabattn[bench]'``)
gives a record without peer numbers and the reason, not an error.
"""

import argparse
import os
import re
import resource
import statistics
import sys
import time
import traceback
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

BACKEND = keras.backend.backend()


# --- timing -------------------------------------------------------------------------------
def median_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _flat(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def passes(layer, call, inputs):
    """``(forward, forward_backward, jit)``: zero-argument callables that block until done.

    ``call(layer, inputs, training)`` calls the layer. ``inputs`` go into the compiled
    functions as arguments, never as closed-over constants that XLA could fold away.
    """
    call(layer, inputs, False)  # build
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in layer.trainable_variables]
        other = [v.value for v in layer.non_trainable_variables]

        def run(tv, ntv, x, training):
            with keras.StatelessScope(
                state_mapping=list(zip(layer.trainable_variables, tv))
                + list(zip(layer.non_trainable_variables, ntv))
            ):
                return _flat(call(layer, x, training))

        forward = jax.jit(lambda tv, ntv, x: run(tv, ntv, x, False))
        grad = jax.jit(jax.grad(
            lambda tv, ntv, x: sum(jnp.sum(o.astype("float32")) for o in run(tv, ntv, x, True)),
            argnums=(0, 2),  # weights and inputs, as inside a network
        ))
        return (lambda: jax.block_until_ready(forward(trainable, other, inputs)),
                lambda: jax.block_until_ready(grad(trainable, other, inputs)), True)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def make(jit):
            @tf.function(jit_compile=jit)
            def forward(x):
                return _flat(call(layer, x, False))

            @tf.function(jit_compile=jit)
            def backward(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.add_n([tf.reduce_sum(tf.cast(o, "float32"))
                                     for o in _flat(call(layer, x, True))])
                return tape.gradient(loss, [layer.trainable_variables, x])

            return (lambda: [t.numpy() for t in forward(inputs)][:0],
                    lambda: [g.numpy() for g in tf.nest.flatten(backward(inputs))
                             if g is not None][:0])

        try:
            fwd, bwd = make(True)
            fwd(), bwd()
            return fwd, bwd, True
        except Exception:  # noqa: BLE001 - some ops have no XLA kernel
            fwd, bwd = make(False)
            return fwd, bwd, False
    import torch

    inputs = [t.detach().requires_grad_(True) for t in inputs] if isinstance(
        inputs, (list, tuple)) else inputs.detach().requires_grad_(True)

    def forward():
        with torch.no_grad():
            _flat(call(layer, inputs, False))

    def backward():
        layer.zero_grad(set_to_none=True)
        for t in _flat(inputs):
            t.grad = None
        loss = sum(o.float().sum() for o in _flat(call(layer, inputs, True)))
        loss.backward()

    return forward, backward, False


def _quiet_kerasfactory():
    """KerasFactory logs every layer's construction at DEBUG level through loguru."""
    try:
        from loguru import logger

        logger.disable("kerasfactory")
    except ImportError:
        pass


# --- cases --------------------------------------------------------------------------------
def _x(*shape, seed=0):
    return keras.ops.convert_to_tensor(
        np.random.default_rng(seed).normal(size=shape).astype("float32")
    )


def cases(rows):
    """Each case: name, input description, tabattn factory, its ``call(layer, x, training)``
    and inputs, peer name, peer module, peer factory, the peer's call and inputs."""
    from tabattn import layers as tl

    b = rows
    x2 = _x(b, 64)
    branches = [_x(b, 64, seed=i) for i in range(3)]
    x3 = _x(max(b // 16, 2), 16, 32)
    vs = _x(b, 16, 8)
    tokens = _x(max(b // 16, 2), 16, 192)

    def plain(layer, x, training):
        return layer(x, training=training)

    def mha_keras(layer, x, training):
        return layer(x, x, training=training)

    return [
        ("RowAttention", f"({b}, 64)", lambda: tl.RowAttention(feature_dim=64), plain, x2,
         "kerasfactory.RowAttention", "kerasfactory.layers",
         lambda m: m.RowAttention(feature_dim=64), plain, x2),
        ("ColumnAttention", f"({b}, 64)", lambda: tl.ColumnAttention(input_dim=64), plain, x2,
         "kerasfactory.ColumnAttention", "kerasfactory.layers",
         lambda m: m.ColumnAttention(input_dim=64), plain, x2),
        ("TabularAttention", f"{tuple(x3.shape)}, 4 heads, d_model 32",
         lambda: tl.TabularAttention(num_heads=4, d_model=32), plain, x3,
         "kerasfactory.TabularAttention", "kerasfactory.layers",
         lambda m: m.TabularAttention(num_heads=4, d_model=32), plain, x3),
        ("SparseAttentionWeighting", f"3 × ({b}, 64)",
         lambda: tl.SparseAttentionWeighting(num_modules=3), plain, branches,
         "kerasfactory.SparseAttentionWeighting", "kerasfactory.layers",
         lambda m: m.SparseAttentionWeighting(num_modules=3), plain, branches),
        ("VariableSelection", f"({b}, 16, 8), units 32",
         lambda: tl.VariableSelection(nr_features=16, units=32), plain, vs,
         "kerasfactory.VariableSelection", "kerasfactory.layers",
         lambda m: m.VariableSelection(nr_features=16, units=32), plain, vs),
        ("MultiHeadAttention", f"{tuple(tokens.shape)}, 8 heads",
         lambda: tl.MultiHeadAttention(num_heads=8, embedding_dim=192), plain, tokens,
         "keras.layers.MultiHeadAttention", "keras.layers",
         lambda m: m.MultiHeadAttention(num_heads=8, key_dim=24), mha_keras, tokens),
    ]


def layer_records(rows, warmup, repeats, machine, versions, log, selected=None):
    records = []
    for name, shape, make, call, x, peer, module, make_peer, peer_call, peer_x in cases(rows):
        if selected and name not in selected:
            continue
        record = {"kind": "speed", "case": name, "input": shape, "backend": BACKEND,
                  "peer": peer, "machine": machine, "versions": versions,
                  "started": _common.now_utc(), "warmup": warmup, "repeats": repeats}
        try:
            fwd, bwd, jit = passes(make(), call, x)
            ours = {"forward": median_ms(fwd, warmup, repeats),
                    "forward+backward": median_ms(bwd, warmup, repeats)}
        except Exception as error:  # noqa: BLE001 - record it, go on with the other cases
            records.append(dict(record, status="error", error=f"{type(error).__name__}: {error}",
                                traceback=traceback.format_exc(), **{"pass": "forward"}))
            log(f"[error] {name}: {error}")
            continue
        theirs, reason = {}, None
        peer_module, reason = _common.optional_import(module)
        if peer_module is not None and module.startswith("kerasfactory"):
            _quiet_kerasfactory()
        if peer_module is not None:
            try:
                pf, pb, _ = passes(make_peer(peer_module), peer_call, peer_x)
                theirs = {"forward": median_ms(pf, warmup, repeats),
                          "forward+backward": median_ms(pb, warmup, repeats)}
            except Exception as error:  # noqa: BLE001 - a failing peer is a finding, not a crash
                reason = f"peer failed: {type(error).__name__}: {error}"
        for which in ("forward", "forward+backward"):
            item = dict(record, status="ok", jit=jit, tabattn_ms=ours[which],
                        peer_ms=theirs.get(which), peer_reason=reason, **{"pass": which})
            if item["peer_ms"]:
                item["ratio"] = item["tabattn_ms"] / item["peer_ms"]
            records.append(item)
            log(f"[ok] {name} {which}: tabattn {ours[which]:.3f} ms, {peer} "
                f"{theirs.get(which, float('nan')):.3f} ms {reason or ''}")
    return records


# --- model --------------------------------------------------------------------------------
N_NUM, N_CAT, CARD = 8, 8, 10


def ft_forward_flops(n_tokens, d, n_blocks, ffn_factor=4 / 3):
    """Matmul FLOPs of one FT-Transformer forward pass per row (2 per multiply-add)."""
    h = int(d * ffn_factor)
    flops = 0
    for block in range(n_blocks):
        q = 1 if block == n_blocks - 1 else n_tokens  # last block: the [CLS] query only
        flops += 2 * d * d * (2 * n_tokens + 2 * q)  # K, V for all tokens; Q, O for queries
        flops += 2 * 2 * q * n_tokens * d  # scores and weighted sum
        flops += 2 * q * d * 2 * h + 2 * q * h * d  # ReGLU FFN
    return flops


def matmul_gflops(n=2048, repeats=5):
    a, b = _x(n, n), _x(n, n, seed=1)
    if BACKEND == "jax":
        import jax

        f = jax.jit(lambda a, b: a @ b)
        fn = lambda: f(a, b).block_until_ready()  # noqa: E731
    else:
        fn = lambda: keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[:1, :1])  # noqa: E731
    return 2 * n**3 / (median_ms(fn, 2, repeats) / 1000) / 1e9


def synthetic_inputs(rows, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "numeric": rng.normal(size=(rows, N_NUM)).astype("float32"),
        "categorical": rng.integers(1, CARD + 1, size=(rows, N_CAT)).astype("int32"),
    }, rng.integers(0, 2, size=(rows, 1)).astype("float32")


def model_records(config, batch, steps, machine, versions, peak, log):
    from tabattn.models import FTTransformer

    records = []
    inputs, y = synthetic_inputs(max(batch, 4096))
    flops_row = 3 * ft_forward_flops(N_NUM + N_CAT + 1, config["d_token"], config["n_blocks"])
    base = {"kind": "speed_model", "backend": BACKEND, "machine": machine, "versions": versions,
            "started": _common.now_utc(), "batch_size": batch, "config": config,
            "commit": _common.source_commit(), "matmul_gflops": peak}

    # tabattn on this backend
    model = FTTransformer(N_NUM, (CARD,) * N_CAT, d_out=1, **config)
    model.compile(optimizer=model.make_optimizer(),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    xb = {k: v[:batch] for k, v in inputs.items()}
    ms = median_ms(lambda: model.train_on_batch(xb, y[:batch]), 2, steps)
    one = {k: v[:1] for k, v in inputs.items()}
    big = {k: v[:4096] for k, v in inputs.items()}
    lat1 = median_ms(lambda: model.predict_on_batch(one), 2, steps)
    lat4096 = median_ms(lambda: model.predict_on_batch(big), 1, max(steps // 4, 1))
    records.append(_model_record(base, "tabattn FTTransformer", ms, batch, lat1, lat4096,
                                 flops_row, peak))
    records[-1]["framework"] = f"keras ({BACKEND}, jit)" if BACKEND != "torch" else (
        "keras (torch, eager)")
    log(f"[ok] tabattn FT-T: {records[-1]['train_rows_per_s']:.0f} rows/s")

    rtdl, reason = _common.optional_import("rtdl_revisiting_models")
    if rtdl is None:
        records.append(dict(base, implementation="rtdl FTTransformer (torch)", status="skipped",
                            reason=reason))
        return records
    import torch

    kwargs = rtdl.FTTransformer.get_default_kwargs()
    kwargs.update(n_blocks=config["n_blocks"], d_block=config["d_token"],
                  attention_n_heads=config["num_heads"])
    if config != FT_DEFAULT:
        kwargs.pop("_is_default", None)
        warnings.filterwarnings("ignore", "The default opimizer", UserWarning)
    net = rtdl.FTTransformer(n_cont_features=N_NUM, cat_cardinalities=[CARD + 1] * N_CAT,
                             d_out=1, **kwargs)
    optimizer = net.make_default_optimizer()
    t = {k: torch.as_tensor(v) for k, v in inputs.items()}
    t["categorical"] = t["categorical"].long()
    ty = torch.as_tensor(y)

    def step():
        net.train()
        optimizer.zero_grad()
        out = net(t["numeric"][:batch], t["categorical"][:batch])
        torch.nn.functional.binary_cross_entropy_with_logits(out, ty[:batch]).backward()
        optimizer.step()

    def infer(n):
        net.eval()
        with torch.no_grad():
            net(t["numeric"][:n], t["categorical"][:n])

    ms = median_ms(step, 2, steps)
    lat1 = median_ms(lambda: infer(1), 2, steps)
    lat4096 = median_ms(lambda: infer(4096), 1, max(steps // 4, 1))
    record = _model_record(base, "rtdl FTTransformer (torch)", ms, batch, lat1, lat4096,
                           flops_row, None)
    record["framework"] = "torch (eager)"  # "backend" stays the process's Keras backend
    record["torch_threads"] = torch.get_num_threads()
    records.append(record)
    log(f"[ok] rtdl FT-T: {record['train_rows_per_s']:.0f} rows/s")
    return records


def tabular_model_record(name, config, rows, batch, steps, machine, versions, log,
                         implementation=None, policy=None):
    """TabR or TabM (``name``) built with ``config`` on ``rows`` synthetic training rows
    (Adult's training split has 26,048): training step (TabR: with self-exclusion, the
    training rows stored as its context; both with the estimators' optimizer) and prediction
    latency, under the dtype policy ``policy`` (default float32)."""
    from tabattn.estimators import ESTIMATOR_OPTIMIZER_PARAMS
    from tabattn.layers import compute_bins
    from tabattn.models import TabM, TabR

    implementation = implementation or f"tabattn {'TabR' if name == 'tabr' else 'TabM'}"
    if policy:
        implementation += f" ({policy})"
    inputs, y = synthetic_inputs(max(rows, 4096))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy or "float32")
    try:
        model_class = TabR if name == "tabr" else TabM
        config = dict(config)
        if config.get("numeric_embedding") == "piecewise":
            config["bins"] = compute_bins(inputs["numeric"][:rows], n_bins=48)
        model = model_class(N_NUM, (CARD,) * N_CAT, d_out=1, num_classes=2, **config)
        xb = {k: v[:batch] for k, v in inputs.items()}
        if name == "tabr":
            kept = model.set_context({k: v[:rows] for k, v in inputs.items()}, y[:rows],
                                     seed=0)
            # Each training row's place among the stored rows, -1 where it is not stored.
            position = np.searchsorted(kept, np.arange(batch))
            stored = kept[np.minimum(position, len(kept) - 1)] == np.arange(batch)
            xb["row_index"] = np.where(stored, position, -1).astype("int32")
        optimizer = dict(model_class.default_optimizer_config(),
                         **ESTIMATOR_OPTIMIZER_PARAMS[name])
        model.compile(optimizer=model.make_optimizer(**optimizer),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
        ms = median_ms(lambda: model.train_on_batch(xb, y[:batch]), 2, steps)
        one = {k: v[:1] for k, v in inputs.items()}
        big = {k: v[:4096] for k, v in inputs.items()}
        lat1 = median_ms(lambda: model.predict_on_batch(one), 2, steps)
        lat4096 = median_ms(lambda: model.predict_on_batch(big), 1, max(steps // 4, 1))
    finally:
        keras.config.set_dtype_policy(previous)
    record = {
        "kind": "speed_model", "backend": BACKEND, "machine": machine, "versions": versions,
        "started": _common.now_utc(), "batch_size": batch,
        "config": {k: v for k, v in config.items() if k != "bins"},
        "optimizer": optimizer, "commit": _common.source_commit(), "dtype_policy": policy,
        "implementation": implementation, "status": "ok", "training_rows": rows,
        "file_key": re.sub(r"[^A-Za-z0-9]+", "_", implementation).strip("_"),
        "context_rows": getattr(model, "context_rows", None),
        "train_step_ms": ms, "train_rows_per_s": batch / (ms / 1000),
        "latency_ms_batch_1": lat1, "latency_ms_batch_4096": lat4096,
        "framework": f"keras ({BACKEND}, jit)" if BACKEND != "torch" else "keras (torch, eager)",
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    log(f"[ok] {implementation}: {record['train_rows_per_s']:.0f} rows/s, "
        f"1-row latency {lat1:.2f} ms")
    return record


def _model_record(base, implementation, step_ms, batch, lat1, lat4096, flops_row, peak):
    gflops = flops_row * batch / (step_ms / 1000) / 1e9
    return dict(
        base, implementation=implementation, status="ok", train_step_ms=step_ms,
        train_rows_per_s=batch / (step_ms / 1000), latency_ms_batch_1=lat1,
        latency_ms_batch_4096=lat4096, train_gflops=gflops,
        fraction_of_matmul_peak=gflops / base["matmul_gflops"],
        # ru_maxrss is KiB on Linux: the whole process's peak so far, not this model's alone.
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


FT_DEFAULT = {"n_blocks": 3, "d_token": 192, "num_heads": 8}
TABR_SMOKE = {"d_main": 16, "num_neighbors": 8}
TABM_SMOKE = {"k": 4, "d_block": 16, "numeric_embedding": None}


def _estimator_config(name):
    """TabR or TabM as the estimators build it: paper defaults with the estimator's changes."""
    from tabattn.estimators import ESTIMATOR_MODEL_PARAMS
    from tabattn.models import TabM, TabR

    model_class = TabR if name == "tabr" else TabM
    return dict(model_class.default_config(), **ESTIMATOR_MODEL_PARAMS[name])


def _model_cases(smoke):
    """``(name, config, implementation, policy)`` of the TabR and TabM measurements."""
    from tabattn.models import TabM, TabR

    if smoke:
        return [("tabr", TABR_SMOKE, None, None), ("tabm", TABM_SMOKE, None, None)]
    tabr, tabm = _estimator_config("tabr"), _estimator_config("tabm")
    cases = [("tabr", tabr, None, None), ("tabm", tabm, None, None)]
    # What the estimators' choices save: TabR searched with every stored row's key
    # recomputed at each step (the paper's way, with the estimators' other settings), and
    # the paper's sizes.
    step = dict(tabr, context_refresh="step", max_context_rows=None, num_neighbors=32)
    cases += [
        ("tabr", step, "tabattn TabR (every key at every step, 32 neighbours)", None),
        ("tabr", TabR.default_config(), "tabattn TabR-S (paper size)", None),
    ]
    if tabm != TabM.default_config():
        cases.append(("tabm", TabM.default_config(), "tabattn TabM (paper size)", None))
    # Mixed precision, which the estimators do not use (see their comment on it).
    cases += [("tabr", tabr, None, "mixed_bfloat16"), ("tabm", tabm, None, "mixed_bfloat16")]
    return cases



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for the JSON records (default benchmarks/results; "
                        "benchmarks/results/smoke with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 warm-up, 2 calls")
    parser.add_argument("--cases", nargs="+", help="layer cases to run (default: all)")
    parser.add_argument("--no-layers", action="store_true")
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--no-ft", action="store_true",
                        help="of the models, run TabR only (skip the FT-Transformers)")
    args = parser.parse_args(argv)
    out = args.out or os.path.join(_common.DEFAULT_RESULTS_DIR, *(["smoke"] if args.smoke else []))
    rows, warmup, repeats = (64, 1, 2) if args.smoke else (4096, 3, 20)
    config = {"n_blocks": 1, "d_token": 16, "num_heads": 2} if args.smoke else FT_DEFAULT
    batch = 32 if args.smoke else 256
    machine, versions = _common.machine_info(), _common.versions()
    records = []
    if not args.no_layers:
        records += layer_records(rows, warmup, repeats, machine, versions, print, args.cases)
    if not args.no_model:
        if not args.no_ft:
            peak = matmul_gflops(256 if args.smoke else 2048)
            print(f"matmul: {peak:.1f} GFLOP/s")
            records += model_records(config, batch, 2 if args.smoke else 20, machine,
                                     versions, peak, print)
        rows, steps = (512, 2) if args.smoke else (26048, 20)
        for name, config, implementation, policy in _model_cases(args.smoke):
            records.append(tabular_model_record(name, config, rows, batch, steps, machine,
                                                versions, print, implementation, policy))
    for record in records:
        record["smoke"] = args.smoke
        key = record.get("case") or record.get("file_key") or (
            record["implementation"].split(" (")[0].replace(" ", "_"))
        suffix = record.get("pass", "").replace("+", "_")
        name = "__".join(filter(None, ["speed", key, suffix, BACKEND]))
        _common.write_record(out, name, record)
    errors = [r for r in records if r.get("status") == "error"]
    print(f"{len(records)} records in {out}; {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
