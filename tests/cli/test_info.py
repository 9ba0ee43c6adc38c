from __future__ import annotations

import re

import torch

from wavesr.bundle.folder import save_bundle
from wavesr.cli.commands.info import ModelCosts, format_report, measure_costs
from wavesr.cli.main import main
from wavesr.config import load_config
from wavesr.evaluation.metrics import count_parameters, flops_per_call
from wavesr.model.autoencoder import FrequencyAutoencoder
from wavesr.model.transformer import LatentDiffusionTransformer


def _counts(text: str) -> dict[str, int]:
    found = re.findall(r"^\s+(autoencoder|LDT|total)\s+([\d,]+)\s", text, flags=re.M)
    return {name: int(value.replace(",", "")) for name, value in found}


def _gflops(text: str, label: str) -> float:
    return float(re.search(rf"{re.escape(label)}\s+([\d.]+) G", text).group(1))


def test_info_parameter_counts_match_the_models(capsys):
    config = load_config("tiny")
    ae = count_parameters(FrequencyAutoencoder(config.autoencoder))
    ldt = count_parameters(LatentDiffusionTransformer(config.ldt))
    assert main(["info", "--preset", "tiny", "--size", "60"]) == 0
    out = capsys.readouterr().out
    assert _counts(out) == {"autoencoder": ae, "LDT": ldt, "total": ae + ldt}
    assert "run as 64x64" in out  # 60 is padded to the tiny model's stride of 16
    enc, step, dec = (
        _gflops(out, k) for k in ("encode (LR LL band)", "per sampling step", "(+ inverse DWT)")
    )
    assert abs(_gflops(out, "one LDT step + AE") - (enc + step + dec)) < 2e-3
    # Printed values are rounded to 0.001 G, so 50 x the step's rounding is the tolerance.
    assert abs(_gflops(out, "50 steps + AE") - (enc + 50 * step + dec)) <= 0.027


def test_info_from_a_model_folder(tmp_path, capsys):
    config = load_config("tiny")
    ae = FrequencyAutoencoder(config.autoencoder)
    ldt = LatentDiffusionTransformer(config.ldt)
    save_bundle(
        tmp_path / "m", "wavesr", config, {"autoencoder": ae.state_dict(), "ldt": ldt.state_dict()}
    )
    assert main(["info", "--model", str(tmp_path / "m"), "--size", "32"]) == 0
    counts = _counts(capsys.readouterr().out)
    assert counts["autoencoder"] == count_parameters(ae)
    assert counts["LDT"] == count_parameters(ldt)


def test_ldt_step_flops_are_one_forward_on_the_latent_grid():
    config = load_config("tiny")
    ae = FrequencyAutoencoder(config.autoencoder).eval()
    ldt = LatentDiffusionTransformer(config.ldt).eval()
    costs = measure_costs(ae, ldt, 32)
    side = 32 // ae.stride  # latent side
    x, cond = torch.randn(1, 12, side, side), torch.randn(1, 3, side, side)
    with torch.no_grad():
        expected = flops_per_call(lambda: ldt(x, torch.tensor([1]), cond))
    assert costs.size == 32 and costs.ldt_step_flops == expected > 0
    assert costs.total_flops(50) - costs.total_flops(1) == 49 * costs.ldt_step_flops


def test_paper_report_states_the_reading_of_17_4_g():
    costs = ModelCosts(224, 10_000_000, 30_000_000, int(1e9), int(2e9), int(3e9))
    text = "\n".join(format_report("paper", 4, 224, costs, 50))
    assert "46.3 M" in text and "17.4 G" in text and "does not state" in text
    assert _gflops(text, "one LDT step + AE") == 6.0
    assert _gflops(text, "50 steps + AE") == 104.0
    assert "17.4" not in "\n".join(format_report("cpu", 4, 224, costs, 50))
