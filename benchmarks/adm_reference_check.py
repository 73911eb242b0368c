"""Compare lit_ip's ADM UNet with OpenAI's reference implementation (not a test: needs the
reference package, which lit_ip does not depend on), and time one forward pass.

    pip download guided-diffusion-sdk==1.0.0 --no-deps -d /tmp/gd && tar xzf /tmp/gd/*.tar.gz -C /tmp/gd
    python benchmarks/adm_reference_check.py --reference /tmp/gd/guided_diffusion_sdk-1.0.0

Checks: identical state-dict keys (order included) and shapes for the full ``ffhq_10m`` and
``imagenet256_uncond`` presets (meta device), and identical outputs of tiny random models with
legacy / new attention order, with / without scale-shift norm and res-block resampling.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from lit_ip.models.adm import ADMUNet, adm_from_preset

FLAGS = {
    "ffhq_10m": dict(image_size=256, num_channels=128, num_res_blocks=1, attention_resolutions="16"),
    "imagenet256_uncond": dict(image_size=256, num_channels=256, num_res_blocks=2,
                               attention_resolutions="32,16,8"),
}
COMMON = dict(channel_mult="", learn_sigma=True, class_cond=False, use_checkpoint=False, num_heads=4,
              num_head_channels=64, num_heads_upsample=-1, use_scale_shift_norm=True, dropout=0.0,
              resblock_updown=True, use_fp16=False, use_new_attention_order=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", help="folder containing the guided_diffusion package")
    ap.add_argument("--time", action="store_true", help="time a 256x256 forward pass of ffhq_10m")
    args = ap.parse_args(argv)
    if args.reference:
        sys.path.insert(0, args.reference)
        from guided_diffusion.script_util import create_model
        from guided_diffusion.unet import UNetModel
        for name, flags in FLAGS.items():
            with torch.device("meta"):
                ref, ours = create_model(**flags, **COMMON), adm_from_preset(name)
            rs, ms = ref.state_dict(), ours.state_dict()
            same = list(rs) == list(ms) and all(rs[k].shape == ms[k].shape for k in rs)
            print(f"{name}: {len(ms)} keys, {sum(v.numel() for v in ms.values()):,} parameters, "
                  f"layout identical to reference: {same}")
        for legacy in (True, False):
            for ss in (True, False):
                kw = dict(model_channels=32, num_res_blocks=2, channel_mult=(1, 1, 2), num_head_channels=16,
                          use_scale_shift_norm=ss, resblock_updown=ss, use_new_attention_order=not legacy)
                ref = UNetModel(32, 3, out_channels=6, attention_resolutions=(2, 4), **kw)
                torch.manual_seed(0)
                for p in ref.parameters():
                    torch.nn.init.normal_(p, std=0.05)
                ours = ADMUNet(32, attention_resolutions=(16, 8), **kw)
                ours.load_state_dict(ref.state_dict(), strict=True)
                x, t = torch.randn(2, 3, 32, 32), torch.tensor([3.0, 700.0])
                with torch.no_grad():
                    diff = (ref(x, t) - ours(x, t)).abs().max().item()
                print(f"tiny legacy={legacy} scale_shift={ss}: max |ref - ours| = {diff:.3g}")
    if args.time:
        net = adm_from_preset("ffhq_10m").eval()
        x, t = torch.randn(1, 3, 256, 256), torch.tensor([500.0])
        with torch.no_grad():
            net(x, t)
            t0 = time.perf_counter()
            net(x, t)
        print(f"ffhq_10m forward, 1x3x256x256, {torch.get_num_threads()} threads: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
