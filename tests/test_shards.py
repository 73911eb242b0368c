"""Webdataset shards: make-shards, rank/worker splitting, global indices, damaged data."""
import io
import json
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lit_ip.cli import main as cli
from lit_ip.data.shards import (ShardDataModule, ShardError, ShardSource, collate_items, count_samples,
                                read_skipped)


def write_folder(root, n=7, size=12, seed=0):
    """n RGB PNGs (every third in a subfolder); returns {key: image tensor}."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        arr = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        rel = f"sub/im{i}" if i % 3 == 0 else f"im{i}"
        path = root / f"{rel}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
        out[rel] = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    return out


@pytest.fixture
def shards(tmp_path):
    images = write_folder(tmp_path / "imgs")
    cli(["make-shards", str(tmp_path / "imgs"), str(tmp_path / "out"), "--per-shard", "3"])
    return tmp_path / "out", images


def test_make_shards_writes_counts_and_is_deterministic(shards, tmp_path):
    out, images = shards
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["count"] for s in manifest["shards"]] == [3, 3, 1] and manifest["total"] == len(images)
    assert [count_samples(str(out / s["name"])) for s in manifest["shards"]] == [3, 3, 1]
    cli(["make-shards", str(tmp_path / "imgs"), str(tmp_path / "again"), "--per-shard", "3"])
    for s in manifest["shards"]:
        assert (out / s["name"]).read_bytes() == (tmp_path / "again" / s["name"]).read_bytes()


def test_items_follow_the_contract_with_global_indices(shards):
    out, images = shards
    items = list(ShardSource(str(out)))
    keys = sorted(images)  # sorted relative paths = shard order
    assert [it["key"] for it in items] == keys
    assert [it["index"] for it in items] == list(range(len(keys)))
    for it in items:
        assert it["image"].dtype == torch.float32 and torch.equal(it["image"], images[it["key"]])
        assert it["meta"]["source"] == it["key"] + ".png"


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_rank_split_covers_everything_once_with_unchanged_indices(shards, world):
    out, images = shards
    seen = []
    for rank in range(world):
        src = ShardSource(str(out))
        src.assign(rank, world)
        got = [(it["key"], it["index"]) for it in src]
        assert len(got) == len(src)  # __len__ = this rank's items
        seen += got
    assert sorted(seen) == sorted((k, i) for i, k in enumerate(sorted(images)))  # rank 3 of 4 gets none


def test_dataloader_workers_split_shards_without_duplicates(shards):
    out, images = shards
    dl = torch.utils.data.DataLoader(ShardSource(str(out)), batch_size=2, num_workers=2,
                                     collate_fn=collate_items)
    batches = list(dl)
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == sorted(images)
    idx = torch.cat([b["index"] for b in batches])
    assert sorted(idx.tolist()) == list(range(len(images)))


def test_datamodule_takes_its_shards_from_the_trainer_rank(shards):
    out, images = shards
    dm = ShardDataModule(str(out), batch_size=2)
    dm.trainer = SimpleNamespace(global_rank=1, world_size=2)
    dm.setup("predict")
    assert [p.split("/")[-1] for p in dm.source.assigned] == ["shard-000001.tar"]
    batch = next(iter(dm.predict_dataloader()))
    assert batch["image"].shape == (2, 3, 12, 12) and batch["index"].tolist() == [3, 4]


def test_truncated_shard_stops_naming_shard_and_key_or_is_skipped_and_listed(shards, tmp_path):
    out, images = shards
    bad = out / "shard-000001.tar"
    with tarfile.open(bad) as tar:
        cut = tar.getmember("sub/im0.png").offset_data + 20
    bad.write_bytes(bad.read_bytes()[:cut])  # cut inside the image of its second sample
    with pytest.raises(ShardError, match=r"shard-000001\.tar.*'sub/im0' is cut off.*last complete sample 'im5'"):
        list(ShardSource(str(out)))
    src = ShardSource(str(out), on_error="skip", errors_dir=str(tmp_path / "errs"))
    got = {it["key"]: it["index"] for it in src}
    assert got == {"im1": 0, "im2": 1, "im4": 2, "im5": 3, "sub/im6": 6}  # indices unchanged
    listed = read_skipped(tmp_path / "errs")
    assert {r["shard"].split("/")[-1] for r in listed} == {"shard-000001.tar"}
    assert [r["key"] for r in listed] == ["sub/im0"]


def test_undecodable_image_names_shard_and_key(tmp_path):
    folder = tmp_path / "imgs"
    write_folder(folder, n=2)
    (folder / "broken.png").write_bytes(b"not a png")
    cli(["make-shards", str(folder), str(tmp_path / "out"), "--per-shard", "2"])
    with pytest.raises(ShardError, match=r"shard-000000\.tar, key 'broken'.*cannot decode"):
        list(ShardSource(str(tmp_path / "out")))
    src = ShardSource(str(tmp_path / "out"), on_error="skip")
    assert [(it["key"], it["index"]) for it in src] == [("im1", 1), ("sub/im0", 2)]
    assert [(r["key"]) for r in src.skipped] == ["broken"]


def test_stored_measurements_and_unsafe_keys_pass_through(tmp_path):
    folder, ys = tmp_path / "imgs", tmp_path / "ys"
    write_folder(folder, n=2)
    ys.mkdir()
    for k in ("im1", "sub/im0"):
        (ys / k).parent.mkdir(parents=True, exist_ok=True)
        np.save(ys / f"{k}.npy", np.full((2, 3), len(k), dtype=np.float32))
    cli(["make-shards", str(folder), str(tmp_path / "out"), "--measurements", str(ys)])
    batch = collate_items(list(ShardSource(str(tmp_path / "out"))))
    assert batch["y"].shape == (2, 2, 3) and batch["y"][1, 0, 0] == len("sub/im0")
    # a hand-made shard with a hostile key: the key is kept verbatim (outputs sanitise it)
    buf = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buf, format="PNG")
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        info = tarfile.TarInfo("../../evil.png")
        info.size = len(buf.getvalue())
        tar.addfile(info, io.BytesIO(buf.getvalue()))
    (item,) = list(ShardSource([str(tmp_path / "evil.tar")]))
    assert item["key"] == "../../evil" and item["image"].shape == (1, 4, 4)
    assert item["image"].allclose(torch.full((1, 4, 4), 128 / 255))


def test_bad_configuration_is_refused(tmp_path, shards):
    out, _ = shards
    with pytest.raises(ValueError, match="on_error"):
        ShardSource(str(out), on_error="ignore")
    with pytest.raises(FileNotFoundError, match="missing"):
        ShardSource(str(tmp_path / "empty-{000..001}.tar"))
    with pytest.raises(ValueError, match="per-shard"):
        cli(["make-shards", str(tmp_path / "imgs"), str(tmp_path / "x"), "--per-shard", "0"])
