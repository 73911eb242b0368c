"""Webdataset shards: make-shards, rank/worker splitting, global indices, damaged data."""
import io
import json
import re
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lit_ip.cli import main as cli
from lit_ip.data.shards import ShardError, ShardSource, collate_items, count_samples, read_skipped
from lit_ip.lightning.datamodules import ShardDataModule


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
        assert len(got) == src.num_items
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


def test_bad_configuration_is_refused(tmp_path, shards, capsys):
    out, _ = shards
    with pytest.raises(ValueError, match="on_error"):
        ShardSource(str(out), on_error="ignore")
    with pytest.raises(FileNotFoundError, match="missing"):
        ShardSource(str(tmp_path / "empty-{000..001}.tar"))
    with pytest.raises(SystemExit) as err:  # the CLI prints the cause in one line
        cli(["make-shards", str(tmp_path / "imgs"), str(tmp_path / "x"), "--per-shard", "0"])
    assert err.value.code == 1
    assert "lit-ip: error: ValueError: --per-shard must be >= 1, got 0" in capsys.readouterr().err


# --- distributed prediction from shards (subprocess CLI, 2 CPU processes) ------------------
CONFIG = """
trainer:
  accelerator: cpu
  devices: 1
  logger: false
  enable_progress_bar: false
  callbacks:
    - class_path: lit_ip.lightning.writer.PredictionWriter
      init_args:
        output_dir: {out}
        print_summary: false
        evaluation:
          class_path: lit_ip.metrics.evaluation.Evaluation
          init_args: {{backbone_weights: {weights}, kid_subsets: 5, kid_subset_size: 6}}
model:
  class_path: lit_ip.lightning.sampling_module.PosteriorSamplingModule
  init_args:
    prior:
      class_path: lit_ip.priors.synthetic.RandomGaussianPrior
      init_args: {{image_shape: [3, 12, 12], seed: 0, std: 0.15}}
    tasks:
      inpaint:
        operator: {{class_path: lit_ip.operators.inpainting.RandomInpainting,
                   init_args: {{fraction_missing: 0.5, in_shape: [3, 12, 12]}}}}
        noise: {{class_path: lit_ip.operators.noise.GaussianNoise, init_args: {{sigma: 0.05}}}}
    methods:
      ddrm: {{class_path: lit_ip.methods.ddrm.DDRM, init_args: {{num_steps: {steps}}}}}
    num_samples: 2
    seed: 0
data:
  class_path: lit_ip.lightning.datamodules.ShardDataModule
  init_args: {{shards: {shards}, batch_size: 2}}
"""


@pytest.fixture(scope="module")
def ddp_setup(tmp_path_factory):
    """11 images in shards of 4, 4, 3 (rank 0 gets 2 shards, rank 1 one) plus a hand-made shard
    whose key tries to escape the output folder; random AlexNet weights for LPIPS / FID / KID."""
    from lit_ip.metrics.backbones import AlexNetFeatures

    root = tmp_path_factory.mktemp("ddp")
    write_folder(root / "imgs", n=11, seed=3)
    cli(["make-shards", str(root / "imgs"), str(root / "shards"), "--per-shard", "4"])
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (40, 120, 200)).save(buf, format="PNG")
    with tarfile.open(root / "shards" / "zz-hostile.tar", "w") as tar:
        info = tarfile.TarInfo("../escape.png")
        info.size = len(buf.getvalue())
        tar.addfile(info, io.BytesIO(buf.getvalue()))
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in AlexNetFeatures().features.state_dict().items()}
    torch.save(state, root / "alexnet.pth")
    return root


STEPS = 100  # enough sampling work for a kill to land midway


def predict(root, out, devices, steps=STEPS, wait=True, shards="shards"):
    import os
    import subprocess
    import sys

    cfg = root / f"{out}.yaml"
    cfg.write_text(CONFIG.format(out=root / out, weights=root / "alexnet.pth", steps=steps,
                                 shards=root / shards))
    cmd = [sys.executable, "-m", "lit_ip", "predict", "--config", str(cfg), f"--trainer.devices={devices}"]
    if devices > 1:
        cmd += ["--trainer.strategy=ddp"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    if not wait:
        return proc
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    return root / out


def files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                  and p.name != "config.yaml" and not p.parts[-2] == "figures")


def table(out):
    import csv

    with open(out / "metrics.csv") as f:
        return {(r["key"], r["task"], r["method"], r["sample"]): r for r in csv.DictReader(f)}


def assert_same_run(a, b):
    from lit_ip.io import read_png

    assert files(a) == files(b)
    for rel in files(a):
        if rel.endswith(".png"):  # equal up to float rounding (one 8-bit level)
            assert (read_png(a / rel) - read_png(b / rel)).abs().max() <= 1 / 255 + 1e-6, rel
    ta, tb = table(a), table(b)
    assert ta.keys() == tb.keys()
    for k, row in ta.items():
        for col, v in row.items():
            if col in ("psnr", "ssim", "lpips", "consistency", "residual_rms", "coverage90", "mse_ratio") and v:
                assert float(tb[k][col]) == pytest.approx(float(v), rel=1e-3, abs=1e-5), (k, col)
    sa, sb = (json.loads((d / "summary.json").read_text())["summary"] for d in (a, b))
    assert [(s["task"], s["method"]) for s in sa] == [(s["task"], s["method"]) for s in sb]
    for x, y in zip(sa, sb):
        for col in ("psnr", "ssim", "lpips", "fid", "kid_mean", "consistency", "coverage90", "mse_ratio"):
            if col in x:
                assert y[col] == pytest.approx(x[col], rel=1e-3, abs=1e-6), (x["method"], col)


@pytest.fixture(scope="module")
def one_process_run(ddp_setup):
    return predict(ddp_setup, "one", 1)


def check_outputs(out):
    """Every key once (the hostile one sanitised, inside the output folder) and the full summary."""
    keys = {json.loads(p.read_text())["key"] for p in (out / "metrics").glob("*.json")}
    assert len(keys) == 12 and "../escape" in keys  # 11 + the hostile one, each once
    assert not list(out.parent.rglob("escape*"))  # only the sanitised "_escape-<hash>" names
    summary = json.loads((out / "summary.json").read_text())
    row = next(s for s in summary["summary"] if s["method"] == "ddrm")
    assert summary["missing_weights"] == [] and row["images"] == 12
    assert {"lpips", "fid", "kid_mean", "consistency", "coverage90", "mse_ratio"} <= set(row)
    assert (out / "inpaint" / "ddrm" / "im1_std.png").exists() and (out / "inpaint" / "ddrm" / "im1_mean.png").exists()


@pytest.mark.slow
def test_two_processes_killed_and_resumed_match_one_process(ddp_setup, one_process_run):
    """Shards of 4, 4, 3 and 1 samples: rank 0 reads 7 samples, rank 1 five. The run is killed
    midway, rerun, and must then equal the uninterrupted one-process run."""
    import os
    import signal
    import time

    out = ddp_setup / "killed"
    proc = predict(ddp_setup, "killed", 2, wait=False)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        if len(list((out / "metrics").glob("*.json"))) >= 1 if (out / "metrics").exists() else False:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its DDP child, mid-run
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    done = {p.name for p in (out / "metrics").glob("*.json")}
    assert 1 <= len(done) < 12 and not (out / "summary.json").exists(), "the kill must land midway"
    before = {rel: (out / rel).read_bytes() for rel in files(out) if not rel.rsplit("/", 1)[-1].startswith(".")}
    predict(ddp_setup, "killed", 2)  # the same command again: resumes
    assert not [p for p in out.rglob(".*.tmp")], "temporary files left behind"
    for rel, data in before.items():  # finished outputs are kept as they were
        assert (out / rel).read_bytes() == data, rel
    check_outputs(out)
    assert_same_run(one_process_run, out)  # nothing lost or duplicated, same values and metrics


def test_predict_stops_on_a_damaged_sample_or_skips_and_lists_it(ddp_setup, tmp_path, capsys):
    import yaml

    folder = tmp_path / "imgs"
    write_folder(folder, n=5, seed=4)
    (folder / "sub" / "im0.png").write_bytes(b"\x89PNG broken")  # 4th of im1, im2, im4, sub/im0, sub/im3
    cli(["make-shards", str(folder), str(tmp_path / "shards"), "--per-shard", "5"])
    cfg = yaml.safe_load(CONFIG.format(out=tmp_path / "out", weights=ddp_setup / "alexnet.pth", steps=3,
                                       shards=tmp_path / "shards"))
    cfg["trainer"]["callbacks"][0]["init_args"]["evaluation"]["init_args"]["kid_subset_size"] = 2
    cfg["data"]["init_args"]["batch_size"] = 1
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as err:  # the CLI names the cause in one line
        cli(["predict", "--config", str(tmp_path / "c.yaml")])
    assert err.value.code == 1
    assert re.search(r"lit-ip: error: ShardError: shard .*shard-000000\.tar, key 'sub/im0'.*cannot decode",
                     capsys.readouterr().err)
    kept = {p.name for p in (tmp_path / "out" / "metrics").glob("*.json")}
    # batches before the damaged one are written and stay (Lightning prefetches one batch ahead,
    # so the batch just before it may be unwritten)
    assert {"im1.json"} <= kept <= {"im1.json", "im2.json", "im4.json"}
    cli(["predict", "--config", str(tmp_path / "c.yaml"), "--data.init_args.on_error=skip"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(r["key"], r["shard"].split("/")[-1]) for r in summary["skipped_samples"]] == [
        ("sub/im0", "shard-000000.tar")]
    done = {json.loads(p.read_text())["key"] for p in (tmp_path / "out" / "metrics").glob("*.json")}
    assert done == {"im1", "im2", "im4", "sub/im3"}


@pytest.mark.slow
def test_a_rank_without_shards_joins_the_collectives(ddp_setup, one_process_run):
    """All images in one shard, two processes: rank 1 has nothing to do but must still join the
    end-of-epoch collectives (FID/KID/LPIPS), and the values equal the one-process run's."""
    single = ddp_setup / "single"
    single.mkdir()
    with tarfile.open(single / "all.tar", "w") as out_tar:  # the 4 shards concatenated, no manifest
        for shard in sorted((ddp_setup / "shards").glob("*.tar")):
            with tarfile.open(shard) as tar:
                for info in tar.getmembers():
                    out_tar.addfile(info, tar.extractfile(info))
    out = predict(ddp_setup, "idle_rank", 2, shards="single")
    check_outputs(out)
    assert_same_run(one_process_run, out)
