"""One data layer: one id rule across folders, manifests and shards; id matching; one phantom contract."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from latentmed.data import label_matrix, match_ids, open_images, read_labels, write_shards
from latentmed.errors import LatentmedError


def test_one_id_rule_across_folder_and_shards(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/a.png", "sub/b.v2.png"):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / name)
    folder = open_images(root)
    assert folder.ids == ["a", "sub/a", "sub/b.v2"]  # path relative to the folder, '/'-separated, no suffix
    write_shards(root, tmp_path / "shards", shard_size=2)
    shards = open_images(tmp_path / "shards")
    assert shards.ids == folder.ids
    torch.testing.assert_close(shards.stack(), folder.stack())
    # a manifest names its files and ids; rows in its order; its numeric columns become labels
    (root / "labels.csv").write_text("id,image,grade\nz,sub/a.png,2\ny,a.png,\n")
    man = open_images(root)
    assert man.ids == ["z", "y"] and man[0]["labels"]["grade"].item() == 2 and torch.isnan(man[1]["labels"]["grade"])
    torch.testing.assert_close(man.stack(), folder.stack([1, 0]))
    (root / "labels.csv").write_text("id,image\nq,missing.png\n")
    with pytest.raises(LatentmedError, match="not found"):
        open_images(root)


def test_match_ids_read_labels_from_a_frame_and_label_matrix():
    assert match_ids(["images/a", "b", "c"], ["a", "b"]) == {"images/a": "a", "b": "b"}
    df = read_labels(pd.DataFrame({"id": [1, 2], "flag": ["0", "1"], "note": ["x", "y"]}))
    assert list(df.index) == ["1", "2"] and df["flag"].dtype == float and df["note"].tolist() == ["x", "y"]
    assert label_matrix(df, ["flag"]).tolist() == [[0], [1]]
    with pytest.raises(LatentmedError, match="0/1 labels, got 'x'"):
        label_matrix(df, ["note"])
    with pytest.raises(LatentmedError, match="no column.*'grade'"):
        label_matrix(df, ["grade"])


def test_phantom_generators_share_one_contract(tmp_path):
    from latentmed.data.phantoms.chest2d import generate_chest2d
    from latentmed.data.phantoms.spine2d import generate_spine2d
    from latentmed.data.phantoms.spine3d import generate_spine3d

    for name, gen, size, files in (("spine2d", generate_spine2d, 16, ("image",)),
                                   ("chest2d", generate_chest2d, 32, ("image", "mask")),
                                   ("spine3d", generate_spine3d, 16, ("mask", "parts"))):
        calls = []
        out = gen(tmp_path / name, 2, size=size, seed=1, progress=lambda k, n: calls.append((k, n)))
        assert out == tmp_path / name and calls == [(1, 2), (1, 2)]
        rows = list(csv.DictReader(open(out / "labels.csv")))
        assert list(rows[0])[0] == "id" and len(rows) == 2
        assert all((out / r[f]).is_file() for r in rows for f in files)
        assert json.loads((out / "phantom.json").read_text())["phantom"] == name
        with pytest.raises(LatentmedError, match="not empty"):
            gen(out, 2, size=size)
        assert gen(out, 1, size=size, overwrite=True) == out
