"""Writes preprocessing_v1.json: the preprocessing state and the model inputs that a given
``tabattn/data.py`` gives for the frames of ``tests/test_data.py``.

It was written with the hand-written preprocessing that the ColumnTransformer replaced::

    git show OLD_COMMIT:src/tabattn/data.py > /tmp/old_data.py
    PYTHONPATH=src python tests/data/make_preprocessing_v1.py /tmp/old_data.py
"""

import importlib.util
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from test_data import V1_PARAMS, _v1_frames  # noqa: E402


def main(path):
    spec = importlib.util.spec_from_file_location("old_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    train, new = _v1_frames()
    pre = module.TabularPreprocessor(**V1_PARAMS).fit(train)
    inputs = {key: value.tolist() for key, value in pre.transform(new).items()}
    record = {"preprocessing": pre.to_dict(), "inputs": inputs}
    (HERE / "preprocessing_v1.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
