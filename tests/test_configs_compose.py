"""Configs split by concern compose with several ``--config`` (lit_ip.compose, lit_ip.cli)."""
from __future__ import annotations

import json

import pytest
import yaml

from lit_ip.compose import POSTERIOR_MODULE, compose, compose_argv, merge

from conftest import REPO, run_cli

CONFIGS = REPO / "configs"
DEMO_TASKS = ("denoise", "sr_4x", "inpaint_70", "inpaint_box", "deblur", "colorize")
DEMO_PARTS = ([CONFIGS / "trainer" / "cpu.yaml", CONFIGS / "data" / "natural_crops_demo.yaml",
               CONFIGS / "prior" / "natural_ddpm.yaml"]
              + [CONFIGS / "task" / "rgb32" / f"{t}.yaml" for t in DEMO_TASKS]
              + [CONFIGS / "method" / f"{m}.yaml" for m in ("pigdm", "dps", "ddnm_plus")])


def test_merge_rules():
    base = {"model": {"init_args": {"methods": {"a": {"class_path": "x.A", "init_args": {"n": 1, "k": 2}}}}},
            "trainer": {"callbacks": [1, 2]}}
    over = {"model": {"init_args": {"methods": {"b": {"class_path": "x.B"},
                                                "a": {"class_path": "A", "init_args": {"n": 5}}}}},
            "trainer": {"callbacks": [3]}}
    out = merge(base, over)
    methods = out["model"]["init_args"]["methods"]
    assert set(methods) == {"a", "b"}                        # dicts add up across files
    assert methods["a"]["init_args"] == {"n": 5, "k": 2}     # same class: init_args merge
    assert out["trainer"]["callbacks"] == [3]                # lists are replaced
    other = merge(base, {"model": {"init_args": {"methods": {"a": {"class_path": "x.C", "init_args": {"m": 0}}}}}})
    assert other["model"]["init_args"]["methods"]["a"] == {"class_path": "x.C", "init_args": {"m": 0}}
    assert base["model"]["init_args"]["methods"]["a"]["init_args"] == {"n": 1, "k": 2}  # inputs untouched


def test_jsonargparse_alone_replaces_dicts_so_composition_is_needed(tmp_path):
    """The reason for lit_ip.compose: plain jsonargparse keeps only the last file's methods."""
    from jsonargparse import ArgumentParser

    from lit_ip.methods import Method

    p = ArgumentParser()
    p.add_argument("--config", action="config")
    p.add_argument("--methods", type=dict[str, Method])
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("methods: {dps: {class_path: lit_ip.methods.dps.DPS}}")
    b.write_text("methods: {pigdm: {class_path: lit_ip.methods.pigdm.PiGDM}}")
    assert set(p.parse_args(["--config", str(a), "--config", str(b)]).methods) == {"pigdm"}
    assert set(compose([str(a), str(b)])["methods"]) == {"dps", "pigdm"}


def test_parts_rebuild_the_self_contained_demo():
    """configs/predict/demo.yaml stays one file; its parts compose to the same run."""
    demo = yaml.safe_load((CONFIGS / "predict" / "demo.yaml").read_text())
    parts = compose([str(p) for p in DEMO_PARTS], subcommand="predict")
    assert parts["model"] == demo["model"]
    assert parts["data"] == demo["data"]
    assert {k: v for k, v in parts["trainer"].items() if k != "callbacks"} == \
        {k: v for k, v in demo["trainer"].items() if k != "callbacks"}


def test_method_files_have_the_shared_layout():
    """configs/method/NAME.yaml: model: {init_args: {methods: {NAME: {class_path, init_args}}}}."""
    files = sorted((CONFIGS / "method").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        cfg = yaml.safe_load(f.read_text())
        assert list(cfg) == ["model"] and list(cfg["model"]) == ["init_args"], f
        methods = cfg["model"]["init_args"]["methods"]
        assert list(cfg["model"]["init_args"]) == ["methods"] and list(methods) == [f.stem], f
        assert set(methods[f.stem]) <= {"class_path", "init_args"} and "class_path" in methods[f.stem]


def test_model_class_defaults_to_posterior_sampling_for_predict(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text((CONFIGS / "method" / "dps.yaml").read_text())
    assert compose([str(m)], subcommand="predict")["model"]["class_path"] == POSTERIOR_MODULE
    assert "class_path" not in compose([str(m)], subcommand="fit")["model"]


def test_compose_argv_keeps_flags_and_single_configs(tmp_path):
    one = ["predict", "--config", "a.yaml", "--trainer.devices=1"]
    assert compose_argv(one) == one
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("trainer: {devices: 1}")
    b.write_text("trainer: {accelerator: cpu}")
    out = compose_argv(["predict", "--x=1", "-c", str(a), "--y=2", f"--config={b}", "--z=3"])
    assert out[:2] == ["predict", "--x=1"] and out[2] == "--config" and out[4:] == ["--y=2", "--z=3"]
    assert yaml.safe_load(open(out[3])) == {"trainer": {"devices": 1, "accelerator": "cpu"}}


def test_missing_config_file_is_named(tmp_path):
    (tmp_path / "a.yaml").write_text("trainer: {devices: 1}")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        compose_argv(["predict", "--config", str(tmp_path / "a.yaml"), "--config", "nope.yaml"])


def test_help_lists_tools_and_only_applicable_subcommands(tmp_path):
    proc = run_cli(["--help"], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for tool in ("report", "make-shards", "memorization", "fit", "predict"):
        assert tool in proc.stdout, tool
    for sub in ("validate", "test"):
        assert f"\n    {sub} " not in proc.stdout, sub


def test_short_class_names_and_every_prior_in_help(tmp_path):
    proc = run_cli(["predict", "--model.help", "PosteriorSamplingModule"], tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for prior in ("GaussianPrior", "GaussianMixturePrior", "EmpiricalPrior", "NetworkPrior",
                  "PretrainedPrior", "ADMPrior", "DiffusersPrior", "RandomGaussianPrior"):
        assert prior in text, prior
    proc = run_cli(["predict", "--model", "PosteriorSamplingModule", "--model.prior.help", "PretrainedPrior"],
                   tmp_path, timeout=120)
    assert proc.returncode == 0 and "path_or_name" in proc.stdout, proc.stderr


@pytest.mark.slow
def test_two_method_files_prior_task_data_trainer_run(tmp_path):
    """The per-part files alone make a runnable predict (one image, one task, two methods)."""
    out = tmp_path / "out"
    parts = [CONFIGS / "trainer" / "cpu.yaml", CONFIGS / "data" / "natural_crops_demo.yaml",
             CONFIGS / "prior" / "natural_ddpm.yaml", CONFIGS / "task" / "rgb32" / "sr_4x.yaml",
             CONFIGS / "method" / "pigdm.yaml", CONFIGS / "method" / "dps.yaml"]
    args = ["predict"] + [a for p in parts for a in ("--config", str(p))] + [
        f"--trainer.callbacks.init_args.output_dir={out}", "--trainer.enable_progress_bar=false",
        "--data.init_args.indices=[9]", "--data.init_args.batch_size=1"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {(s["task"], s["method"]) for s in summary["summary"]} == \
        {("sr_4x", m) for m in ("pinv (baseline)", "pigdm", "dps")}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert set(saved["model"]["init_args"]["methods"]) == {"pigdm", "dps"}
    assert summary["nfe"]["dps"] == 30 and summary["nfe"]["pigdm"] == 25


def test_parts_rebuild_a_protocol():
    """configs/predict/protocols/dps_ffhq_sr4.yaml = ADM FFHQ prior + DPS sr4 task + FFHQ-1k data + its DPS."""
    proto = yaml.safe_load((CONFIGS / "predict" / "protocols" / "dps_ffhq_sr4.yaml").read_text())
    method = ("model: {init_args: {methods: {dps: {class_path: lit_ip.methods.dps.DPS, "
              "init_args: {num_steps: 1000, eta: 1.0, zeta: 0.5}}}}}")
    parts = compose([str(CONFIGS / "prior" / "adm_ffhq.yaml"), str(CONFIGS / "task" / "rgb256" / "sr4_bicubic.yaml"),
                     str(CONFIGS / "data" / "ffhq1k.yaml"), method], subcommand="predict")
    assert parts["model"] == proto["model"] and parts["data"] == proto["data"]


def test_bare_prior_help_lists_every_prior_class(capsys):
    from lit_ip.cli import main
    from lit_ip.priors.base import Prior

    assert main(["predict", "--model.prior.help"]) == 0
    text = capsys.readouterr().out
    import lit_ip.priors  # noqa: F401  (every prior module)

    def subclasses(c):
        return [s for sub in c.__subclasses__() for s in [sub, *subclasses(sub)]]
    names = {c.__name__ for c in subclasses(Prior) if c.__module__.startswith("lit_ip.")}
    assert len(names) >= 9
    for name in names:
        assert f"  {name} " in text, name
    assert main(["predict", "--model.init_args.methods.help"]) == 0
    assert "DPS" in capsys.readouterr().out
