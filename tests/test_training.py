"""`lit-ip fit` end to end, fine-tuning, training targets, training data and memorisation."""
import csv

import pytest
import torch
import yaml
from lightning import Trainer
from safetensors.torch import load_file
from test_network_prior import OracleNetwork

from lit_ip.cli import main
from lit_ip.data.bundled import LFWFaces, NaturalCrops, SkimagePhotos
from lit_ip.lightning.train_data import Augmented, TrainingData, shift
from lit_ip.lightning.training import DiffusionTraining, sample_prior
from lit_ip.metrics.memorization import memorization_report
from lit_ip.priors.analytic import EmpiricalPrior
from lit_ip.priors.network import NetworkPrior
from lit_ip.priors.paths import RectifiedFlowPath, VPPath
from lit_ip.priors.pretrained import PretrainedPrior
from lit_ip.sampling.schedules import UniformTime

TINY_NET = {"class_path": "lit_ip.models.unet.DiffusersUNet",
            "init_args": {"in_channels": 1, "sample_size": 8, "block_out_channels": [8, 16],
                          "layers_per_block": 1, "norm_num_groups": 4}}


def _config(tmp_path, prediction="velocity"):
    path = ({"class_path": "lit_ip.priors.paths.RectifiedFlowPath"} if prediction == "velocity"
            else {"class_path": "lit_ip.priors.paths.VPPath"})
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "precision": 32, "max_steps": 4,
                    "val_check_interval": 2, "check_val_every_n_epoch": None, "limit_val_batches": 1,
                    "enable_progress_bar": False, "logger": False,
                    "default_root_dir": str(tmp_path / "run"),
                    "callbacks": [{"class_path": "lit_ip.lightning.training.ExportPrior",
                                   "init_args": {"dirpath": str(tmp_path / "prior"), "log_every_n_steps": 1,
                                                 "num_samples": 2, "sample_steps": 3}}]},
        "model": {"class_path": "lit_ip.lightning.training.DiffusionTraining",
                  "init_args": {"network": TINY_NET, "path": path, "prediction": prediction,
                                "time_scale": 999.0 if prediction == "velocity" else 1.0,
                                "lr": 1e-3, "warmup_steps": 1, "ema_decay": 0.9}},
        "data": {"class_path": "lit_ip.lightning.train_data.TrainingData",
                 "init_args": {"train": {"class_path": "lit_ip.data.bundled.LFWFaces",
                                         "init_args": {"split": "train", "size": 8}},
                               "heldout": {"class_path": "lit_ip.data.bundled.LFWFaces",
                                           "init_args": {"split": "heldout", "size": 8}},
                               "batch_size": 8}},
    }
    f = tmp_path / "fit.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    cli = main(["fit", "--config", str(_config(tmp))])
    return tmp, cli


def test_fit_exports_the_ema_prior_and_it_samples(fitted):
    tmp, cli = fitted
    d = tmp / "prior"
    for f in ("config.json", "diffusion_pytorch_model.safetensors", "prior.json",
              "training_curve.csv", "training_curve.png", "samples.png"):
        assert (d / f).is_file(), f
    rows = list(csv.DictReader(open(d / "training_curve.csv")))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == [1, 2, 3, 4]
    assert sum(1 for r in rows if r["val_loss"]) == 2
    shipped = load_file(str(d / "diffusion_pytorch_model.safetensors"))
    ema, raw = cli.model.ema_network.unet.state_dict(), cli.model.network.unet.state_dict()
    assert all(torch.equal(shipped[k], ema[k]) for k in ema)
    assert any(not torch.equal(shipped[k], raw[k]) for k in raw)  # EMA, not the raw weights, ships
    prior = PretrainedPrior(str(d))
    assert prior.prediction == "velocity" and prior.image_shape == (1, 8, 8)
    x = sample_prior(prior, 3, num_steps=4, seed=0)
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()
    assert torch.equal(x, sample_prior(prior, 3, num_steps=4, seed=0))


def test_fit_resumes_from_a_checkpoint(fitted):
    tmp, _ = fitted
    ckpt = next((tmp / "run").rglob("*.ckpt"))
    cli = main(["fit", "--config", str(_config(tmp)), "--trainer.max_steps", "6", "--ckpt_path", str(ckpt)])
    assert cli.trainer.global_step == 6
    assert int(cli.model.ema_updates) == 6
    rows = list(csv.DictReader(open(tmp / "prior" / "training_curve.csv")))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == [1, 2, 3, 4, 5, 6]


def test_finetune_from_a_prior_directory_with_frozen_parts(fitted):
    tmp, _ = fitted
    src = load_file(str(tmp / "prior" / "diffusion_pytorch_model.safetensors"))
    model = DiffusionTraining(init_from=str(tmp / "prior"), path=RectifiedFlowPath(),
                              prediction="velocity", time_scale=999.0, freeze=["unet.down_blocks"],
                              warmup_steps=1, lr=1e-2)
    start = model.network.unet.state_dict()
    assert all(torch.equal(start[k], src[k]) for k in src)
    data = TrainingData(LFWFaces("train", 8), batch_size=8)
    Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, limit_val_batches=0).fit(model, data)
    end = model.network.unet.state_dict()
    frozen = [k for k in src if k.startswith("down_blocks") and "weight" in k]
    trained = [k for k in src if k.startswith("up_blocks") and "weight" in k]
    assert frozen and all(torch.equal(end[k], src[k]) for k in frozen)
    assert any(not torch.equal(end[k], src[k]) for k in trained)
    with pytest.raises(ValueError, match="matches no parameter"):
        DiffusionTraining(init_from=str(tmp / "prior"), freeze=["decoder."])


@pytest.mark.parametrize("path,kind,scale,data_range", [
    (VPPath(), "eps", 1.0, (-1.0, 1.0)), (VPPath(), "v", 1.0, (0.0, 1.0)),
    (VPPath(), "x0", 1.0, (-1.0, 1.0)), (RectifiedFlowPath(), "velocity", 999.0, (-1.0, 1.0)),
    (RectifiedFlowPath(), "velocity", 1.0, (0.0, 1.0))])
def test_training_target_agrees_with_the_prior_wrapper(path, kind, scale, data_range):
    """On a one-image data set the exact denoiser is known; the network predicting it exactly
    has zero training loss, and the wrapper turns it back into that image."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, 4, 4, generator=g)
    lo, hi = data_range
    exact = EmpiricalPrior(image, path.scaled(1 / (hi - lo)))
    oracle = OracleNetwork(exact, path, kind, lo, hi, scale)
    module = DiffusionTraining(network=torch.nn.Identity(), path=path, prediction=kind,
                               data_range=data_range, time_scale=scale)
    for t in module.sample_times(4, generator=g):
        t = t.clamp(max=0.99) if kind == "velocity" else t
        loss = module.loss(oracle, image.expand(3, -1, -1, -1), t.repeat(3),
                           torch.randn(3, 1, 4, 4, generator=g))
        assert loss.max() < 1e-8, (kind, float(t), loss)
    prior = NetworkPrior(oracle, path, kind, (1, 4, 4), data_range, scale)
    x_t = torch.randn(2, 1, 4, 4, generator=g)
    assert torch.allclose(prior.denoise(x_t, torch.stack(UniformTime().times(path, 4))[1]), image.expand(2, -1, -1, -1), atol=1e-5)


def test_bundled_splits_are_fixed_and_disjoint():
    train, held = LFWFaces("train"), LFWFaces("heldout")
    assert (len(train), len(held)) == (80, 20)
    assert not {train[i]["key"] for i in range(80)} & {held[i]["key"] for i in range(20)}
    item = held[3]
    assert item["image"].shape == (1, 32, 32) and item["index"] == 3
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert torch.equal(LFWFaces("all")[83]["image"], item["image"])
    nt, nh = NaturalCrops("train"), NaturalCrops("heldout")
    assert not set(nt.photos) & set(nh.photos)
    assert nt[0]["image"].shape == (3, 32, 32) and len({nh[i]["key"] for i in range(len(nh))}) == len(nh)
    torch.manual_seed(0)
    rnd = NaturalCrops("train", random_crops=True)
    assert rnd[0]["image"].shape == (3, 32, 32) and rnd[0]["key"] != nt[0]["key"]
    big = SkimagePhotos(["chelsea"], size=(48, 64))[0]
    assert big["image"].shape == (3, 48, 64) and big["key"] == "chelsea"


def test_training_data_split_and_augmentation():
    faces = LFWFaces("all", 8)
    a, b = TrainingData(faces, heldout_fraction=0.25), TrainingData(faces, heldout_fraction=0.25)
    keys_tr = {x["key"] for x in a.train_set.source}
    keys_ho = {x["key"] for x in a.heldout_set}
    assert len(keys_ho) == 25 and not keys_tr & keys_ho
    assert keys_ho == {x["key"] for x in b.heldout_set}
    aug = Augmented(faces, hflip=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        x, ref = aug[5]["image"], faces[5]["image"]
        assert torch.equal(x, ref) or torch.equal(x, ref.flip(-1))
        seen.add(torch.equal(x, ref))
    assert seen == {True, False}
    x = faces[7]["image"]
    moved = shift(x, 2, -1)
    assert torch.equal(moved[:, 2:, :-1], x[:, :-2, 1:])  # content moves down 2, left 1
    assert torch.equal(moved[:, 0, :-1], x[:, 2, 1:])  # the rows shifted in are reflections
    torch.manual_seed(1)
    shifted = Augmented(faces, hflip=False, max_shift=2)[7]["image"]
    assert shifted.shape == x.shape and any(
        torch.equal(shifted, shift(x, dy, dx)) for dy in range(-2, 3) for dx in range(-2, 3))
    batch = next(iter(a.train_dataloader()))
    assert batch["image"].shape == (32, 1, 8, 8)


def test_memorization_report_separates_copies_from_new_images():
    faces = torch.stack([LFWFaces("all")[i]["image"] for i in range(100)])
    train, held = faces[:80], faces[80:]
    copies = torch.cat([train[:10], train[10:20].flip(-1)])
    rep = memorization_report(copies, train, held)
    assert rep["samples"]["nn_mean"] < 1e-6 and rep["samples"]["copy_fraction"] == 1.0
    assert rep["heldout"]["nn_mean"] > 0.02 and rep["heldout"]["copy_fraction"] < 0.5
    noise = torch.rand(20, 1, 32, 32)
    far = memorization_report(noise, train, held)
    assert far["nn_ratio_samples_to_heldout"] > 1.5 and far["samples"]["copy_fraction"] == 0.0


# --- small-data flow matching: the restricted (principal-subspace) source --------------------------
def test_subspace_source_fit_and_restricted_draws():
    from lit_ip.priors.subspace_source import SubspaceGaussianSource

    x = torch.stack([LFWFaces("train", 8)[i]["image"] for i in range(20)])
    src = SubspaceGaussianSource.fit(x, explained_variance=0.9)
    assert 1 <= src.k < 19 and src.explained(x) >= 0.9
    smaller = SubspaceGaussianSource.fit(x, k=src.k - 1) if src.k > 1 else None
    assert smaller is None or smaller.explained(x) < 0.9
    draws = src.sample(500, torch.Generator().manual_seed(0))
    resid = (draws.flatten(1) - src.mean) - (draws.flatten(1) - src.mean) @ src.basis @ src.basis.T
    assert float(resid.abs().max()) < 1e-4                       # every draw lies in the subspace
    assert torch.allclose(src.basis.T @ src.basis, torch.eye(src.k), atol=1e-5)
    with pytest.raises(ValueError, match="not in"):
        SubspaceGaussianSource.fit(x, k=40)
    with pytest.raises(ValueError, match="exactly one"):
        SubspaceGaussianSource.fit(x)


def test_fit_with_a_restricted_source_exports_and_samples_in_the_subspace(tmp_path):
    from lit_ip.priors.subspace_source import SubspaceFlowPrior

    cfg = yaml.safe_load(_config(tmp_path).read_text())
    cfg["model"]["class_path"] = "lit_ip.lightning.subspace_flow.SubspaceFlowTraining"
    cfg["model"]["init_args"]["k"] = 5
    f = tmp_path / "sub.yaml"
    f.write_text(yaml.safe_dump(cfg))
    cli = main(["fit", "--config", str(f)])
    assert cli.model.source.k == 5
    d = tmp_path / "prior"
    assert (d / "source.safetensors").is_file()
    prior = SubspaceFlowPrior(str(d))
    assert torch.equal(prior.source_model.basis, cli.model.source.basis.cpu())
    with pytest.raises(ValueError, match="restricted source"):
        PretrainedPrior(str(d))
    from lit_ip.rng import SampleRNG
    x1 = prior.init_noise(3, SampleRNG.for_indices(range(3)))      # t = 1: the source itself, [0, 1] units
    span = 2.0
    r = (span * x1).flatten(1) - prior.source_model.mean
    assert float((r - r @ prior.source_model.basis @ prior.source_model.basis.T).abs().max()) < 1e-4
    x = sample_prior(prior, 2, num_steps=3, seed=0)
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()
    from lit_ip.methods import OTODE, PiGDM
    from lit_ip.operators.identity import Identity
    from lit_ip.operators.noise import GaussianNoise
    y, op, noise = torch.rand(2, 1, 8, 8), Identity((1, 8, 8)), GaussianNoise(0.1)
    with pytest.raises(ValueError, match="restricted Gaussian source"):          # isotropic-noise formulas
        PiGDM(num_steps=2).sample(prior, op, y, SampleRNG.for_indices(range(2)), noise)
    x = OTODE(num_steps=3).sample(prior, op, y, SampleRNG.for_indices(range(2)), noise)
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()
    ckpt = next((tmp_path / "run").rglob("*.ckpt"))
    again = main(["fit", "--config", str(f), "--trainer.max_steps", "5", "--ckpt_path", str(ckpt)])
    assert torch.equal(again.model.source.basis.cpu(), cli.model.source.basis.cpu())


def test_small_data_sets_first_items_and_lfw_non_faces():
    from lit_ip.data.lfw_nonfaces import LFWNonFaces
    from lit_ip.data.subsets import FirstItems

    faces = LFWFaces("train", 8)
    sub = FirstItems(faces, n=25)
    assert len(sub) == 25 and sub[3]["key"] == faces[3]["key"] and sub[3]["index"] == 3
    with pytest.raises(ValueError, match="exactly one"):
        FirstItems(faces)
    with pytest.raises(ValueError, match="indices"):
        FirstItems(faces, n=81)
    tr, ho = LFWNonFaces("train", 8), LFWNonFaces("heldout", 8)
    assert (len(tr), len(ho)) == (60, 20) and not set(tr.ids) & set(ho.ids)
    assert min(tr.ids) >= 100                                      # no face crop among them
    assert not any(torch.equal(tr[i]["image"], faces[j]["image"]) for i in range(3) for j in range(80))
