"""PosteriorSamplingModule, PredictionWriter and the data sources, in process."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from lightning import Trainer
from PIL import Image

from lit_ip.data.analytic import AnalyticPriorSamples
from lit_ip.data.folder import ImageFolder
from lit_ip.io import read_png, sanitize_key
from lit_ip.lightning.datamodules import ImageDataModule, collate_items
from lit_ip.lightning.sampling_module import PosteriorSamplingModule, Task
from lit_ip.lightning.writer import PredictionWriter
from lit_ip.methods.base import GuidedMethod, Unconditional
from lit_ip.operators.base import Operator
from lit_ip.operators.dense import DenseMatrixOperator
from lit_ip.operators.identity import Identity
from lit_ip.operators.inpainting import RandomInpainting
from lit_ip.operators.noise import GaussianNoise
from lit_ip.priors.synthetic import RandomGaussianMixturePrior, RandomGaussianPrior

SHAPE = (1, 4, 4)


class DataFit(GuidedMethod):
    """A DPS-like test method: one autograd step on ||A(x0) - y||^2 per step (needs gradients)."""

    needs_grad = True
    requires = ("differentiable",)

    def estimate(self, s, p):
        loss = ((p.operator(s.x0) - p.y) ** 2).sum()
        (g,) = torch.autograd.grad(loss, s.x)
        return s.x0 - 0.1 * g


class Counting(Unconditional):
    """Unconditional sampling that counts the samples it draws."""

    def __init__(self, num_steps: int = 3):
        super().__init__(num_steps)
        self.drawn = 0

    def sample(self, prior, operator, y, rng, noise=None):
        self.drawn += y.shape[0]
        return super().sample(prior, operator, y, rng, noise)


class NeedsSVD(Unconditional):
    requires = ("svd",)


class FirstPixelsSquared(Operator):
    """Nonlinear, y = x[:5]^2 (flattened): not image-shaped, no pseudo-inverse."""

    def forward(self, x):
        return x.flatten(1)[:, :5] ** 2


@pytest.fixture(scope="module")
def prior():
    return RandomGaussianPrior(SHAPE, seed=0)


def make_module(prior, methods=None, num_samples=1, **kw):
    tasks = {"denoise": Task(Identity(SHAPE), GaussianNoise(0.1)),
             "inpaint": Task(RandomInpainting(0.5, SHAPE), GaussianNoise(0.02))}
    return PosteriorSamplingModule(prior, kw.pop("tasks", tasks), methods or {"ddpm": Unconditional(4)},
                                   num_samples=num_samples, seed=3, **kw)


def run_predict(module, source, out, batch_size=3):
    writer = PredictionWriter(str(out), figure_images=3, print_summary=False)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False, callbacks=[writer])
    trainer.predict(module, datamodule=ImageDataModule(source, batch_size=batch_size), return_predictions=False)
    return writer


def by_key(out, task, part):
    return {k: out["tasks"][task][part][j] for j, k in enumerate(out["key"])}


def test_results_do_not_depend_on_batching(prior):
    module = make_module(prior, num_samples=2)
    ds = AnalyticPriorSamples(prior, 6, seed=1)
    full = module.reconstruct(collate_items([ds[i] for i in range(6)]))
    parts = [module.reconstruct(collate_items([ds[i] for i in idx])) for idx in ([4, 1], [5, 0, 2, 3])]
    for task in ("denoise", "inpaint"):
        for part in ("y", "pinv"):
            ref = by_key(full, task, part)
            for p in parts:
                for k, v in by_key(p, task, part).items():
                    torch.testing.assert_close(v, ref[k], atol=1e-5, rtol=0)
        ref = {k: full["tasks"][task]["recon"]["ddpm"][j] for j, k in enumerate(full["key"])}
        for p in parts:
            for j, k in enumerate(p["key"]):
                torch.testing.assert_close(p["tasks"][task]["recon"]["ddpm"][j], ref[k], atol=1e-5, rtol=0)
    x = full["tasks"]["denoise"]["recon"]["ddpm"]
    assert x.shape == (6, 2, *SHAPE)
    assert (x[:, 0] - x[:, 1]).abs().amax(dim=(1, 2, 3)).min() > 1e-3, "posterior samples should differ"


def test_simulated_measurements_follow_operator_and_noise(prior):
    module = make_module(prior, methods={"ddpm": Unconditional(1)})
    ds = AnalyticPriorSamples(prior, 64, seed=2)
    out = module.reconstruct(collate_items([ds[i] for i in range(64)]))
    resid = out["tasks"]["denoise"]["y"] - out["image"]
    assert 0.09 < float(resid.std()) < 0.11  # sigma = 0.1 over 1024 draws
    y = out["tasks"]["inpaint"]["y"]
    masks = module.tasks["inpaint"].operator.bind(out["index"], module.seed).mask
    assert float((masks == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    torch.testing.assert_close(out["tasks"]["inpaint"]["pinv"], masks * y)


def test_given_measurements_are_used_as_is(prior):
    module = make_module(prior, tasks={"denoise": Task(Identity(SHAPE), GaussianNoise(0.1))})
    y = torch.full((2, *SHAPE), 0.3)
    out = module.reconstruct({"y": y, "key": ["a", "b"], "index": torch.tensor([0, 1])})
    assert out["image"] is None
    torch.testing.assert_close(out["tasks"]["denoise"]["y"], y)
    torch.testing.assert_close(out["tasks"]["denoise"]["pinv"], y)
    assert out["tasks"]["denoise"]["recon"]["ddpm"].shape == (2, 1, *SHAPE)


def test_gradient_method_runs_under_trainer_predict(prior, tmp_path):
    """Lightning predicts under inference mode; a method that differentiates must still work."""
    module = make_module(prior, methods={"fit": DataFit(3)})
    run_predict(module, AnalyticPriorSamples(prior, 2, seed=1), tmp_path)
    for key in ("sample_00000", "sample_00001"):
        assert (tmp_path / "inpaint" / "fit" / f"{key}.png").is_file()


def test_resume_skips_complete_keys_and_never_rewrites(prior, tmp_path):
    counting = Counting(3)
    module = make_module(prior, methods={"ddpm": counting}, num_samples=2)
    source = AnalyticPriorSamples(prior, 5, seed=1)
    run_predict(module, source, tmp_path)
    assert counting.drawn == 2 * 5 * 2  # tasks x keys x samples
    files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.rglob("*.png")
             if p.parent.name != "figures"}
    files.update({p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "metrics").glob("*.json")})
    removed = [tmp_path / "denoise" / "ddpm" / "sample_00001_s01.png", tmp_path / "metrics" / "sample_00003.json"]
    for p in removed:
        p.unlink()
    stale = tmp_path / "denoise" / "ddpm" / ".sample_00009.png.litip-x1.tmp"  # as left by a killed run
    stale.write_bytes(b"partial")
    counting.drawn = 0
    run_predict(module, source, tmp_path)
    # key 1 lost one image of (denoise, ddpm): only that result is drawn again (its inpaint result
    # and key 3's results, whose metrics/KEY.json alone was lost, are read back from their records)
    assert counting.drawn == 1 * 2, "only the one incomplete (key, task, method) result is sampled again"
    for p, stamp in files.items():
        assert p.exists()
        if p not in removed:
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp, f"{p} was rewritten"
    with open(tmp_path / "metrics.csv", newline="") as f:
        ids = [(r["key"], r["task"], r["method"], r["sample"]) for r in csv.DictReader(f)]
    assert len(ids) == len(set(ids)) == 5 * 2 * (2 + 3)  # keys x tasks x (pinv, trivial + 2 samples + mean)
    assert not stale.exists() and not list(tmp_path.rglob("*.tmp"))


def test_incompatible_pairs_are_refused_or_skipped(prior, tmp_path):
    tasks = {"square": Task(FirstPixelsSquared(SHAPE)), "denoise": Task(Identity(SHAPE), GaussianNoise(0.05))}
    methods = {"needs_svd": NeedsSVD(2), "ddpm": Unconditional(2)}
    with pytest.raises(ValueError, match=r"needs_svd.*square.*svd|needs_svd.*square"):
        PosteriorSamplingModule(prior, tasks, methods)
    module = PosteriorSamplingModule(prior, tasks, methods, skip_incompatible=True)
    assert module.pairs == {"square": ["ddpm"], "denoise": ["needs_svd", "ddpm"]}
    writer = run_predict(module, AnalyticPriorSamples(prior, 2, seed=1), tmp_path)
    assert writer.layout["display"]["square"] is None  # neither image-shaped y nor a pinv
    assert not (tmp_path / "square" / "measurement").exists() and not (tmp_path / "square" / "needs_svd").exists()
    assert (tmp_path / "square" / "ddpm" / "sample_00001.png").is_file()
    assert (tmp_path / "figures" / "square.png").is_file()


def test_vector_measurement_is_shown_as_pinv(prior, tmp_path):
    g = torch.Generator().manual_seed(0)
    op = DenseMatrixOperator(torch.randn(8, 16, generator=g) / 4, SHAPE)
    module = make_module(prior, tasks={"cs": Task(op, GaussianNoise(0.01))})
    run_predict(module, AnalyticPriorSamples(prior, 2, seed=1), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["measurement_shown_as"]["cs"] == "pinv (y has shape (8,))"
    for k in ("sample_00000", "sample_00001"):
        assert torch.equal(read_png(tmp_path / "cs" / "measurement" / f"{k}.png"),
                           read_png(tmp_path / "cs" / "pinv" / f"{k}.png"))


def test_network_prior_from_a_directory_with_a_gradient_method(tmp_path):
    """A (tiny, random) diffusers prior loaded from a directory goes through predict,
    including a method that differentiates through the network."""
    from lit_ip.models.unet import DiffusersUNet
    from lit_ip.priors.paths import VPPath
    from lit_ip.priors.pretrained import PretrainedPrior, save_prior_dir

    torch.manual_seed(0)
    net = DiffusersUNet(in_channels=1, sample_size=8, block_out_channels=(8, 16), layers_per_block=1,
                        norm_num_groups=4)
    save_prior_dir(tmp_path / "prior", net.unet, VPPath(), "eps", (-1, 1), (1, 8, 8))
    prior = PretrainedPrior(str(tmp_path / "prior"))
    module = PosteriorSamplingModule(prior, {"inpaint": Task(RandomInpainting(0.5, (1, 8, 8)))},
                                     {"fit": DataFit(2), "ddpm": Unconditional(2)}, seed=0)
    data = AnalyticPriorSamples(RandomGaussianPrior((1, 8, 8), seed=0), 3, seed=0)
    run_predict(module, data, tmp_path / "out", batch_size=2)
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv", newline="")))
    assert {(r["method"], r["key"]) for r in rows} == {(m, f"sample_{i:05d}") for m in ("fit", "ddpm", "pinv", "trivial")
                                                       for i in range(3)}
    assert not any(p.requires_grad for p in prior.parameters())


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_keys_sizes_and_writer(tmp_path, prior):
    root = tmp_path / "imgs"
    rng = torch.Generator().manual_seed(0)
    rgb = (torch.rand(10, 12, 3, generator=rng) * 255).to(torch.uint8).numpy()
    _save(root / "b.png", rgb)
    _save(root / "sub dir" / "a.png", rgb[..., 0])
    _save(root / "a.jpg", rgb)
    (root / "notes.txt").write_text("not an image")
    ds = ImageFolder(str(root), size=4, channels=1)
    assert ds.keys == ["a", "b", "sub dir/a"]
    items = [ds[i] for i in range(3)]
    assert all(it["image"].shape == SHAPE and it["index"] == i for i, it in enumerate(items))
    assert all(0 <= float(it["image"].min()) and float(it["image"].max()) <= 1 for it in items)
    full = ImageFolder(str(root), channels=3)[1]["image"]
    torch.testing.assert_close(full, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    assert ImageFolder(str(root), size=(5, 7))[0]["image"].shape == (3, 5, 7)
    module = make_module(prior, methods={"ddpm": Unconditional(2)})
    run_predict(module, ds, tmp_path / "out")
    safe = sanitize_key("sub dir/a")
    assert "/" not in safe and (tmp_path / "out" / "ground_truth" / f"{safe}.png").is_file()
    written = torch.stack([read_png(tmp_path / "out" / "ground_truth" / f"{sanitize_key(k)}.png") for k in ds.keys])
    assert (written - torch.stack([it["image"] for it in items])).abs().max() <= 0.5 / 255 + 1e-6


def test_analytic_samples_are_exact_and_order_free(prior):
    ds = AnalyticPriorSamples(prior, 400, seed=5)
    torch.testing.assert_close(ds[7]["image"], AnalyticPriorSamples(prior, 10, seed=5)[7]["image"])
    assert not torch.equal(ds[7]["image"], AnalyticPriorSamples(prior, 10, seed=6)[7]["image"])
    x = torch.stack([ds[i]["image"].flatten() for i in range(400)]).double()
    se = prior.cov_matrix().diagonal().sqrt() / 20  # standard error of a 400-sample mean
    assert ((x.mean(0) - prior.mean_vector()).abs() < 4 * se).all()
    assert ds[3]["key"] == "sample_00003"


def test_synthetic_priors_are_deterministic_and_valid():
    a, b = RandomGaussianPrior((2, 3, 3), seed=4, std=0.2), RandomGaussianPrior((2, 3, 3), seed=4, std=0.2)
    assert torch.equal(a.cov_matrix(), b.cov_matrix()) and torch.equal(a.mean_vector(), b.mean_vector())
    assert not torch.equal(a.cov_matrix(), RandomGaussianPrior((2, 3, 3), seed=5, std=0.2).cov_matrix())
    assert float(a.lam.min()) > 0
    assert float(a.cov_matrix().diagonal().mean()) == pytest.approx(0.04, rel=0.01)
    m = RandomGaussianMixturePrior((1, 3, 3), num_components=3, seed=1, weights=[1, 2, 1])
    torch.testing.assert_close(m.weights, torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64))
    assert torch.cdist(m.means, m.means).fill_diagonal_(1.0).min() > 0.1  # separated components


def test_datamodule_limit_indices_and_collate_errors(prior):
    dm = ImageDataModule(AnalyticPriorSamples(prior, 7, seed=0), batch_size=3, limit=5)
    batches = list(dm.predict_dataloader())
    assert [len(b["key"]) for b in batches] == [3, 2]
    assert [int(i) for b in batches for i in b["index"]] == [0, 1, 2, 3, 4]
    dm = ImageDataModule(AnalyticPriorSamples(prior, 7, seed=0), batch_size=2, indices=[6, 2, 4], limit=2)
    assert [b["key"] for b in dm.predict_dataloader()] == [["sample_00006", "sample_00002"]]
    for bad, msg in (([1, 1], "repeats"), ([7], "out of range")):
        with pytest.raises(ValueError, match=msg):
            ImageDataModule(AnalyticPriorSamples(prior, 7, seed=0), indices=bad).dataset
    with pytest.raises(ValueError, match="different shapes.*batch_size=1"):
        collate_items([{"image": torch.zeros(1, 2, 2), "key": "a", "index": 0},
                       {"image": torch.zeros(1, 3, 3), "key": "b", "index": 1}])


def test_summary_reports_counted_network_evaluations(prior, tmp_path):
    """``nfe`` in summary.json and metrics.csv is what the prior counted, not ``num_steps``: DAPS
    makes ``ode_steps`` calls per level, DPS one call and one backward pass per step."""
    from lit_ip.methods import DAPS, DPS
    methods = {"daps": DAPS(4, ode_steps=3, langevin_steps=2, lr=1e-4), "dps": DPS(5, zeta=0.01)}
    module = make_module(prior, methods=methods, num_samples=2,
                         tasks={"denoise": Task(Identity(SHAPE), GaussianNoise(0.1))})
    run_predict(module, AnalyticPriorSamples(prior, 3, seed=1), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    daps_nfe = methods["daps"].expected_nfe(prior)["nfe"]
    assert daps_nfe > methods["daps"].num_steps
    assert summary["nfe"] == {"daps": daps_nfe, "dps": 5}
    assert summary["nfe_backward"] == {"daps": 0, "dps": 5}
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert {float(r["nfe"]) for r in rows if r["method"] == "daps"} == {daps_nfe}
    assert all(r["nfe"] == "" for r in rows if r["method"] == "pinv")


class Watching(Unconditional):
    """Unconditional sampling that records, at each call, which outputs are already on disk,
    and can fail at a given call (an interrupted run)."""

    def __init__(self, num_steps: int = 2, root=None, fail_at: int = -1):
        super().__init__(num_steps)
        # _fail_at: private, so the run binding (which skips "_" attributes) sees one setting
        self.root, self._fail_at, self.calls, self.seen = root, fail_at, 0, []

    def sample(self, prior, operator, y, rng, noise=None):
        self.calls += 1
        if self.calls == self._fail_at:
            raise RuntimeError("interrupted")
        self.seen.append({p.relative_to(self.root).as_posix() for p in self.root.rglob("*.png")}
                         | {p.relative_to(self.root).as_posix() for p in self.root.rglob("*.json")})
        return super().sample(prior, operator, y, rng, noise)


def test_each_task_method_result_is_written_when_done_and_resumes(prior, tmp_path):
    watch = Watching(2, tmp_path)
    module = make_module(prior, methods={"ddpm": watch, "other": Unconditional(2)})
    run_predict(module, AnalyticPriorSamples(prior, 2, seed=1), tmp_path, batch_size=2)
    # the second method on the first task already sees the first method's images and records
    first, second = watch.seen  # calls: (denoise, ddpm), (inpaint, ddpm)
    assert "denoise/ddpm/sample_00000.png" not in first
    assert {"denoise/ddpm/sample_00001.png", "denoise/measurement/sample_00000.png",
            "metrics/pairs/denoise/ddpm/sample_00001.json"} <= second
    assert not any(p.startswith("metrics/sample_") for p in second), "done markers come last"
    ref = {p: read_png(p) for p in tmp_path.rglob("*.png") if p.parent.name != "figures"}
    # an interrupted run keeps finished (task, method) results; the rerun draws only the rest
    out = tmp_path / "again"
    out.mkdir()
    failing = Watching(2, out, fail_at=2)  # dies on its second task, after `other` ran on the first
    module = make_module(prior, methods={"ddpm": failing, "other": Unconditional(2)})
    with pytest.raises(RuntimeError, match="interrupted"):
        run_predict(module, AnalyticPriorSamples(prior, 2, seed=1), out, batch_size=2)
    assert (out / "denoise" / "ddpm" / "sample_00001.png").is_file()
    assert not list((out / "metrics").glob("*.json"))
    resumed = Watching(2, out)
    run_predict(make_module(prior, methods={"ddpm": resumed, "other": Unconditional(2)}),
                AnalyticPriorSamples(prior, 2, seed=1), out, batch_size=2)
    assert resumed.calls == 1, "only (inpaint, ddpm) is left to draw"
    for p, img in ref.items():
        torch.testing.assert_close(read_png(out / p.relative_to(tmp_path)), img, atol=1 / 255, rtol=0)
    rows = list(csv.DictReader(open(out / "metrics.csv", newline="")))
    assert len(rows) == 2 * 2 * (2 + 2)  # keys x tasks x (pinv, trivial, ddpm, other)


def test_trivial_estimate_rows_and_best_baseline(prior, tmp_path):
    module = make_module(prior, methods={"ddpm": Unconditional(2)})
    run_predict(module, AnalyticPriorSamples(prior, 3, seed=1), tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv", newline="")))
    got = {(r["key"], r["task"], r["method"]): float(r["psnr"]) for r in rows}
    for k in ("sample_00000", "sample_00001", "sample_00002"):
        gt, y = read_png(tmp_path / "ground_truth" / f"{k}.png"), read_png(tmp_path / "denoise" / "measurement" / f"{k}.png")
        mse = float(((gt - y) ** 2).mean())  # the PNGs are 8-bit: compare loosely
        assert got[(k, "denoise", "trivial")] == pytest.approx(-10 * torch.log10(torch.tensor(mse)).item(), abs=0.3)
    summary = json.loads((tmp_path / "summary.json").read_text())
    labels = {(s["task"], s["method"]) for s in summary["summary"]}
    assert {("denoise", "trivial (baseline)"), ("inpaint", "trivial (baseline)")} <= labels
    best = summary["best_baseline"]
    for task in ("denoise", "inpaint"):
        means = {s["method"]: s["psnr"] for s in summary["summary"] if s["task"] == task}
        assert best[task]["psnr"] == max(means["pinv (baseline)"], means["trivial (baseline)"])


def test_progress_bar_counts_task_method_image_items_and_lightning_is_quiet(prior, tmp_path, caplog, recwarn):
    from lit_ip.lightning.progress import WorkProgressBar

    class Recorder(WorkProgressBar):
        def on_predict_start(self, trainer, pl_module):
            super().on_predict_start(trainer, pl_module)
            self.total, self.counted = self.bar.total, 0

        def on_work(self, event):
            super().on_work(event)
            self.counted += 0 if event["event"] == "start" else event["count"]

    def run(out):
        bar = Recorder()
        writer = PredictionWriter(str(out), figure_images=2, print_summary=False)
        trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_model_summary=False, callbacks=[writer, bar])
        assert trainer.progress_bar_callback is bar  # it replaces Lightning's bar
        trainer.predict(make_module(prior, methods={"a": Unconditional(2), "b": Unconditional(2)}),
                        datamodule=ImageDataModule(AnalyticPriorSamples(prior, 3, seed=1), batch_size=2),
                        return_predictions=False)
        return bar

    with caplog.at_level("INFO"):
        bar = run(tmp_path)
    assert bar.total == bar.counted == 3 * 2 * 2  # images x tasks x methods
    (tmp_path / "metrics" / "sample_00002.json").unlink()
    (tmp_path / "inpaint" / "b" / "sample_00001.png").unlink()
    bar = run(tmp_path)  # resumed: finished items count at once
    assert bar.total == bar.counted == 12
    assert not [r for r in caplog.records if "Tip:" in r.getMessage()]
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]
