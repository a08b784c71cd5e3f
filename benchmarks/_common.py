"""What every benchmark record carries: machine, versions, backend; and writing records.

Shared by ``accuracy.py`` and ``speed.py`` (habit 13: every result records backend, device,
versions, dataset, seed and the peer measured in the same run).
"""

import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")

# Distribution names whose versions a record lists when they are installed.
_VERSIONED = (
    "tabattn", "keras", "numpy", "pandas", "scikit-learn", "jax", "jaxlib", "torch",
    "tensorflow", "tensorflow-cpu", "lightgbm", "xgboost", "xgboost-cpu",
    "rtdl_revisiting_models", "kerasfactory",
)


def cpu_model():
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info():
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "gpu": None,  # CPU-only benchmarks; a GPU run should fill this in
    }


def versions():
    found = {}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def source_commit():
    """The repository's commit (``git describe --always --dirty``), or ``None`` outside git:
    records of one tabattn version made before and after a change stay apart."""
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def keras_backend():
    import keras

    return keras.backend.backend()


def optional_import(module, install="pip install 'tabattn[bench]'"):
    """``(module, None)`` if importable, else ``(None, reason)`` naming the install line."""
    try:
        return importlib.import_module(module), None
    except ImportError as error:
        return None, f"{module} is not importable ({error}); install it with: {install}"


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_record(directory, name, record):
    """Write ``record`` as ``directory/name.json``, atomically (a killed run leaves no half
    file)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(record, file, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path
