"""Issue 11, inputs: every sample is accounted for (damaged tar headers, manifests, duplicate
and colliding keys), images of any bit depth and alpha are read right, hidden files are
skipped, unreadable files are named (or skipped and listed), and user errors are one line."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
import yaml
from lightning import Trainer
from PIL import Image

from lit_ip.cli import main
from lit_ip.data.folder import ImageFolder
from lit_ip.data.make_shards import make_shards
from lit_ip.data.shards import ShardError, ShardSource, collate_items, decode_image
from lit_ip.lightning.datamodules import ShardDataModule
from lit_ip.lightning.datamodules import ImageDataModule
from lit_ip.lightning.resume import DuplicateKeyError
from lit_ip.lightning.sampling_module import PosteriorSamplingModule, Task
from lit_ip.lightning.writer import PredictionWriter
from lit_ip.methods.base import Unconditional
from lit_ip.operators.identity import Identity
from lit_ip.priors.synthetic import RandomGaussianPrior

from conftest import TOY_CONFIG, load_config, predict_args

SHAPE = (3, 12, 12)


def write_images(root, names, size=12, seed=0):
    rng = np.random.default_rng(seed)
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(p)


def predict(datamodule, out):
    prior = RandomGaussianPrior(SHAPE, seed=0)
    module = PosteriorSamplingModule(prior, {"denoise": Task(Identity(SHAPE))}, {"ddpm": Unconditional(2)})
    writer = PredictionWriter(str(out), figure_images=2, print_summary=False)
    Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
            enable_model_summary=False, callbacks=[writer]).predict(module, datamodule=datamodule,
                                                                   return_predictions=False)
    return json.loads((out / "summary.json").read_text())


# --- 2. a damaged tar header ------------------------------------------------------------------
@pytest.fixture
def damaged(tmp_path):
    """The issue's reproduction: 8 images, shards of 2, 40 bytes overwritten at offset 1124 of the third."""
    write_images(tmp_path / "imgs", [f"im{i}.png" for i in range(8)])
    main(["make-shards", str(tmp_path / "imgs"), str(tmp_path / "sh"), "--per-shard", "2"])
    bad = tmp_path / "sh" / "shard-000002.tar"
    data = bytearray(bad.read_bytes())
    data[1124:1164] = b"\xff" * 40
    bad.write_bytes(bytes(data))
    return tmp_path / "sh"


def test_a_damaged_tar_header_is_an_error_naming_the_shard(damaged, tmp_path):
    with pytest.raises(ShardError, match=r"shard-000002\.tar.*only 1 of the 2 samples listed in manifest"
                                         r"\.json could be read.*header at byte"):
        list(ShardSource(str(damaged)))
    src = ShardSource(str(damaged), on_error="skip")
    assert len(list(src)) == 7 and [r["shard"].split("/")[-1] for r in src.skipped] == ["shard-000002.tar"]
    summary = predict(ShardDataModule(str(damaged), batch_size=3, on_error="skip"), tmp_path / "out")
    assert summary["num_images"] == 7 and len(summary["skipped_samples"]) == 1  # listed, not silent
    (damaged / "manifest.json").unlink()  # without a manifest, the scan finds the damage
    with pytest.raises(ShardError, match=r"shard-000002\.tar.*damaged tar: the header at byte \d+"):
        list(ShardSource(str(damaged)))


def test_manifest_and_folder_must_agree(damaged):
    (damaged / "shard-000003.tar").unlink()
    with pytest.raises(ShardError, match=r"lists shards that are missing.*shard-000003\.tar"):
        ShardSource(str(damaged))


# --- 3. duplicate and colliding keys in shards -------------------------------------------------
def test_the_same_key_in_two_shards_is_refused_naming_both(tmp_path):
    for d in ("a", "b"):
        write_images(tmp_path / d, ["im0.png", f"{d}.png"], seed=ord(d))
        make_shards(tmp_path / d, tmp_path / f"sh_{d}")
    shards = [str(tmp_path / "sh_a" / "shard-000000.tar"), str(tmp_path / "sh_b" / "shard-000000.tar")]
    with pytest.raises(ShardError, match=r"sh_b/shard-000000\.tar, key 'im0': duplicate key: 'im0' is also a "
                                         r"sample of shard .*sh_a/shard-000000\.tar"):
        predict(ShardDataModule(shards, batch_size=1), tmp_path / "out")
    summary = predict(ShardDataModule(shards, batch_size=1, on_error="skip"), tmp_path / "skip")
    assert summary["num_images"] == 3 and [r["key"] for r in summary["skipped_samples"]] == ["im0"]
    # split over two DataLoader workers (each reads one shard), the writer refuses it, naming both items
    with pytest.raises(DuplicateKeyError, match=r"same key 'im0'.*\(index [13]\).*\(index [13]\)"):
        predict(ShardDataModule(shards, batch_size=1, num_workers=2), tmp_path / "workers")


def test_a_key_and_its_sanitised_twin_get_separate_outputs(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (10, 20, 30)).save(buf, format="PNG")
    with tarfile.open(tmp_path / "t.tar", "w") as tar:
        for name in ("a/b.png", "a_b-3ec69c85.png", "c.png", "d.png"):
            info = tarfile.TarInfo(name)
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    summary = predict(ShardDataModule([str(tmp_path / "t.tar")], batch_size=4), tmp_path / "out")
    assert summary["num_images"] == 4
    assert len(list((tmp_path / "out" / "metrics").glob("*.json"))) == 4


# --- 6. bit depth, alpha, hidden files, unreadable files -----------------------------------------
def test_images_of_any_depth_and_alpha_read_right_and_hidden_files_are_skipped(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(d / "deep.png")  # 16-bit grey
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255          # red hidden under alpha 0 ...
    rgba[0, 0] = (0, 0, 255, 255)  # ... except one opaque blue pixel
    rgba[0, 1] = (0, 0, 0, 128)    # and one half-transparent black one
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    Image.fromarray(np.full((4, 4), 51, dtype=np.uint8)).save(d / "grey.png")
    (d / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(d / ".ipynb_checkpoints" / "grey-checkpoint.png")
    (d / "._grey.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    ds = ImageFolder(str(d))
    assert ds.keys == ["alpha", "deep", "grey"]
    items = {it["key"]: it["image"] for it in ds}
    assert torch.allclose(items["deep"], torch.full((3, 4, 4), 40000 / 65535))
    a = items["alpha"]
    assert torch.allclose(a[:, 2, 2], torch.ones(3)), "transparent pixels composited on white"
    assert torch.allclose(a[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(a[:, 0, 1], torch.full((3,), 1 - 128 / 255))
    assert torch.allclose(items["grey"], torch.full((3, 4, 4), 0.2))
    # the shard reader decodes the same way, and make-shards leaves hidden files out
    for name in ("alpha", "deep"):
        assert torch.allclose(decode_image((d / f"{name}.png").read_bytes(), "png").expand(3, -1, -1), items[name])
    assert make_shards(d, tmp_path / "sh")["total"] == 3
    with pytest.raises(ValueError, match="transparent pixels"):
        ImageFolder(str(d), background=None)[0]


def test_unreadable_images_are_named_or_skipped_and_listed(tmp_path):
    d = tmp_path / "imgs"
    write_images(d, ["a.png", "b.png", "c.png"])
    (d / "b.png").write_bytes(b"")  # zero bytes
    (d / "c.png").write_bytes((d / "a.png").read_bytes()[:60])  # truncated
    ds = ImageFolder(str(d))
    with pytest.raises(ValueError, match=r"cannot read image '.*b\.png'"):
        ds[1]
    skip = ImageFolder(str(d), on_error="skip")
    assert [it["key"] for it in skip] == ["a"] and [it["index"] for it in skip] == [0]
    summary = predict(ImageDataModule(skip, batch_size=2), tmp_path / "out")
    assert sorted(r["key"] for r in summary["skipped_samples"]) == ["b", "c"]


# --- errors: named early, one line -------------------------------------------------------------
def test_mixed_sizes_in_a_shard_batch_name_the_keys():
    items = [{"image": torch.zeros(3, 4, 4), "key": "small", "index": 0},
             {"image": torch.zeros(1, 8, 8), "key": "big", "index": 1}]
    with pytest.raises(ShardError, match=r"\['small', 'big'\] have images of different shapes"):
        collate_items(items)


@pytest.mark.parametrize("name", ["metrics.csv", "summary.json", "t" * 245])
def test_task_names_that_cannot_be_outputs_are_refused_at_construction(name):
    prior = RandomGaussianPrior((1, 4, 4), seed=0)
    with pytest.raises(ValueError, match="task name .* is not allowed"):
        PosteriorSamplingModule(prior, {name: Task(Identity((1, 4, 4)))}, {"ddpm": Unconditional(2)})


def test_make_shards_takes_long_file_names(tmp_path):
    name = "x" * 246 + ".png"  # 250 characters: over the ustar limit, at the file-system limit
    write_images(tmp_path / "imgs", [name, "b.png"])
    manifest = make_shards(tmp_path / "imgs", tmp_path / "sh")
    assert manifest["total"] == 2 and (tmp_path / "sh" / "manifest.json").is_file()
    assert sorted(it["key"] for it in ShardSource(str(tmp_path / "sh"))) == ["b", "x" * 246]


def test_user_errors_print_one_line_naming_the_cause(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["lit-ip"])
    monkeypatch.delenv("LIT_IP_DEBUG", raising=False)
    monkeypatch.delenv("LIT_IP_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as err:  # a config value of the wrong type
        main(predict_args(TOY_CONFIG, tmp_path / "o1", "--model.init_args.methods.dps.init_args.zeta=abc"))
    msg = capsys.readouterr().err
    assert err.value.code == 2 and "usage:" not in msg
    assert msg.startswith("lit-ip: error: in the configuration: model > PosteriorSamplingModule > methods > "
                          "DPS > zeta: Expected a <class 'float'>. Got value: abc")
    # a data error at run time: an unreadable image in a folder
    write_images(tmp_path / "imgs", ["a.png"], size=8)
    (tmp_path / "imgs" / "b.png").write_bytes(b"")
    cfg = load_config()
    cfg["data"]["init_args"] = {"batch_size": 2, "source": {"class_path": "lit_ip.data.folder.ImageFolder",
                                "init_args": {"root": str(tmp_path / "imgs"), "channels": 1}}}
    cfg["model"]["init_args"]["methods"] = {"ddpm": {"class_path": "lit_ip.methods.base.Unconditional",
                                                    "init_args": {"num_steps": 2}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as err:
        main(predict_args(tmp_path / "c.yaml", tmp_path / "o2"))
    msg = capsys.readouterr().err
    assert err.value.code == 1 and "Traceback" not in msg
    assert msg.startswith("lit-ip: error: ValueError: cannot read image ") and "b.png" in msg.splitlines()[0]
    monkeypatch.setenv("LIT_IP_DEBUG", "1")  # the debug switch gives the exception back
    with pytest.raises(ValueError, match="cannot read image"):
        main(predict_args(tmp_path / "c.yaml", tmp_path / "o3"))
