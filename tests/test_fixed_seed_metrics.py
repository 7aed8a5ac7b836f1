"""Fixed-seed runs of every trainer give the numbers they gave before the shared run layer.

The expected values below were recorded by running the pre-redesign code (``agents/training.py``
and the image modules' own checkpoint code) on these exact tiny configs. Sampling runs on the
PyTorch path (no C kernel, no projection sampler), so the numbers do not depend on which
kernel a machine builds. A refactor of the run layer must leave every one of them unchanged.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from image_samplers.data import load_digits

TOL = 1e-6
AGENT_SETS = {
    "vocab_size": 30,
    "seq_len": 6,
    "n_real": 256,
    "n_valid": 64,
    "mle_epochs": 1,
    "disc_kwargs": {"emb_dim": 8, "filter_sizes": [2, 3], "num_filters": [8, 8]},
    "d_pretrain_steps": 1,
    "d_steps": 1,
    "d_epochs": 1,
    "d_negatives": 64,
    "eval_samples": 64,
    "eval_every": 2,
    "checkpoint_every": 1,
    "batch_size": 16,
    "total_steps": 3,
    "seed": 5,
    "tensorboard": False,
    "progress": False,
    "device": "cpu",
}


@pytest.fixture(autouse=True)
def _pytorch_sampling(monkeypatch):
    """The PyTorch sampling path on every machine (the C kernel's draws depend on its build)."""
    from textgan_envs import projection_sampling

    monkeypatch.setenv("TEXTGAN_NATIVE_SAMPLING", "0")
    old = projection_sampling.set_projection_sampling(False)
    yield
    projection_sampling.set_projection_sampling(old)


def _csv(path: Path, drop: tuple[str, ...] = ()) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        return [
            {k: float(v) for k, v in row.items() if k not in drop and v != ""}
            for row in csv.DictReader(handle)
        ]


def _assert_rows(got: list[dict[str, float]], expected: list[dict[str, float]]) -> None:
    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert row.keys() == want.keys(), (sorted(row), sorted(want))
        for key, value in want.items():
            if math.isnan(value):
                assert math.isnan(row[key]), (row["step"], key)
            else:
                assert row[key] == pytest.approx(value, abs=TOL, rel=TOL), (row["step"], key)


def run_agent(name: str, out: Path) -> list[dict[str, float]]:
    """A 3-step run of a text agent; its metrics.csv rows."""
    from agents import actor_critic, bgan, reinforce
    from agents.runtime import build_config

    module, extra = {
        "reinforce": (reinforce, {"n_rollouts": 2, "baseline": "moving_average"}),
        "bgan": (bgan, {"n_groups": 4, "n_samples": 4, "estimator": "reinforce"}),
        "actor_critic": (actor_critic, {"n_rollouts": 2}),
    }[name]
    config_cls = {
        "reinforce": "ReinforceConfig",
        "bgan": "BGANConfig",
        "actor_critic": "ActorCriticConfig",
    }[name]
    cfg = build_config(
        getattr(module, config_cls), {**AGENT_SETS, **extra, "out_dir": str(out / name)}
    )
    module.train(cfg)
    return _csv(out / name / "metrics.csv")


def run_maskgan(out: Path) -> list[dict[str, float]]:
    """MaskMLE, discriminator pre-training and adversarial steps on a made-up corpus."""
    from agents.maskgan import MaskGANConfig, train

    corpus = out / "corpus.txt"
    words = ["a", "cat", "dog", "sits", "on", "the", "mat", "runs", "in", "park"]
    gen = torch.Generator().manual_seed(0)
    lines = [
        " ".join(words[i] for i in torch.randint(len(words), (int(n),), generator=gen).tolist())
        for n in torch.randint(3, 9, (120,), generator=gen)
    ]
    corpus.write_text("\n".join(lines) + "\n")
    cfg = MaskGANConfig(
        out_dir=str(out / "maskgan"),
        corpus_path=str(corpus),
        seq_len=10,
        n_eval=20,
        emb_dim=8,
        hidden_dim=8,
        batch_size=16,
        mle_steps=2,
        d_pretrain_steps=2,
        total_steps=3,
        eval_every=0,
        log_every=1,
        checkpoint_every=2,
        baseline="moving_average",
        tensorboard=False,
        progress=False,
        num_threads=1,
        device="cpu",
        seed=3,
    )
    train(cfg)
    return _csv(out / "maskgan" / "metrics.csv")


def run_began(out: Path) -> list[dict[str, float]]:
    """Seven BEGAN steps, interrupted at 4 and resumed (the window straddles the checkpoint)."""
    from image_samplers.began import BEGANConfig
    from image_samplers.began.train import BEGANTrainer

    data = load_digits(8).subset(torch.arange(24))
    cfg = BEGANConfig(
        image_size=8,
        num_filters=4,
        z_dim=4,
        h_dim=4,
        batch_size=8,
        steps=7,
        log_every=3,
        sample_every=0,
        checkpoint_every=4,
        lr=1e-3,
        gamma=1.0,
        lambda_k=0.05,
        seed=2,
    )
    BEGANTrainer(cfg, out_dir=out / "began", device="cpu", dataset=data).train(
        stop_at=4, progress=False, tensorboard=False
    )
    BEGANTrainer.resume(out / "began", device="cpu", dataset=data).train(
        progress=False, tensorboard=False
    )
    return _csv(out / "began" / "metrics.csv", drop=("images_per_s",))


def run_ppgn(out: Path) -> list[dict[str, float]]:
    """Every PPGN stage for one epoch on 128 digits."""
    from image_samplers.ppgn.config import PPGNConfig
    from image_samplers.ppgn.train import train_ppgn

    data = load_digits(8).subset(torch.arange(128))
    config = PPGNConfig(
        image_size=8,
        code_dim=8,
        width=4,
        dae_hidden=16,
        batch_size=32,
        classifier_epochs=1,
        generator_epochs=1,
        dae_epochs=1,
        lr=1e-3,
        seed=1,
    )
    train_ppgn(data, out / "ppgn", config, device="cpu", progress=False)
    return _csv(out / "ppgn" / "metrics.csv")


NAN = float("nan")
# Recorded with the pre-redesign code. The redesign renamed two columns and added one (values
# unchanged): every agent logs ``d_fake`` (mean D on its fakes: the old ``reward`` of BGAN and
# actor-critic, the prob-mode reward of REINFORCE) and ``reward`` as the env reward it consumed
# (BGAN's old ``log_w_mean``, actor-critic's old ``log_d``); MaskGAN's ``d_fake_prob`` is
# ``d_fake``. Actor-critic's rows were re-recorded after its deliberate fix (Monte-Carlo returns
# are the discounted outcome, not a sum of Q estimates; the critic is fitted to the first batch):
# they pin the fixed rule the same way.
EXPECTED: dict[str, list[dict[str, float]]] = {
    "reinforce": [
        {
            "step": 1.0,
            "reward": 0.4904467463493347,
            "d_fake": 0.4904467463493347,
            "q_mean": 0.49157893657684326,
            "advantage_std": 0.004609390627592802,
            "g_loss": 8.936595916748047,
            "entropy": 3.091524124145508,
            "g_grad_norm": 0.6671175956726074,
            "baseline": 0.49157893657684326,
            "d_loss": 0.7040266990661621,
            "d_accuracy": 0.46875,
            "nll_oracle": NAN,
            "nll_test": NAN,
        },
        {
            "step": 2.0,
            "reward": 0.49091029167175293,
            "d_fake": 0.49091029167175293,
            "q_mean": 0.49196434020996094,
            "advantage_std": 0.004401681013405323,
            "g_loss": 0.012310659512877464,
            "entropy": 3.0139310359954834,
            "g_grad_norm": 0.00905331689864397,
            "baseline": 0.49161747694015506,
            "d_loss": 0.701982855796814,
            "d_accuracy": 0.53125,
            "nll_oracle": 4.5907175950706005,
            "nll_test": 3.0132475942373276,
        },
        {
            "step": 3.0,
            "reward": 0.4910537302494049,
            "d_fake": 0.4910537302494049,
            "q_mean": 0.49205589294433594,
            "advantage_std": 0.005725224036723375,
            "g_loss": 0.008404647000133991,
            "entropy": 2.96886944770813,
            "g_grad_norm": 0.00753821199759841,
            "baseline": 0.49166131854057316,
            "d_loss": 0.7024243474006653,
            "d_accuracy": 0.578125,
            "nll_oracle": 4.5496545024216175,
            "nll_test": 3.046556072930495,
        },
    ],
    "bgan": [
        {
            "step": 1.0,
            "reward": -0.03822283819317818,
            "d_fake": 0.4904467463493347,
            "ess": 3.9984447956085205,
            "weight_variance": 2.4313167159562e-05,
            "g_loss": -0.0009973440319299698,
            "entropy": 3.091524124145508,
            "g_grad_norm": 0.03955322131514549,
            "log_partition": -0.03798341751098633,
            "d_loss": 0.7069038152694702,
            "d_accuracy": 0.4609375,
            "nll_oracle": NAN,
            "nll_test": NAN,
        },
        {
            "step": 2.0,
            "reward": -0.030210519209504128,
            "d_fake": 0.4924495220184326,
            "ess": 3.9970602989196777,
            "weight_variance": 4.596974758896977e-05,
            "g_loss": 0.12021228671073914,
            "entropy": 3.045588731765747,
            "g_grad_norm": 0.06250784546136856,
            "log_partition": -0.037572553001036145,
            "d_loss": 0.701447069644928,
            "d_accuracy": 0.5078125,
            "nll_oracle": 4.614910718053579,
            "nll_test": 2.9903341432412467,
        },
        {
            "step": 3.0,
            "reward": -0.02501983940601349,
            "d_fake": 0.4937460124492645,
            "ess": 3.998504638671875,
            "weight_variance": 2.3378774130833335e-05,
            "g_loss": 0.1980735957622528,
            "entropy": 2.9810378551483154,
            "g_grad_norm": 0.03670952469110489,
            "log_partition": -0.03693009941579811,
            "d_loss": 0.7055835723876953,
            "d_accuracy": 0.5,
            "nll_oracle": 4.820353206247091,
            "nll_test": 3.031388840948542,
        },
    ],
    "actor_critic": [
        {
            "step": 1.0,
            "reward": -0.7125012874603271,
            "d_fake": 0.4904467463493347,
            "return_mean": -0.5548434257507324,
            "advantage_mean": 0.06939851492643356,
            "advantage_clipped_frac": 0.0,
            "actor_loss": 1.3079549074172974,
            "critic_loss": 0.006920450832694769,
            "explained_variance": 0.7935565114021301,
            "entropy": 3.091524124145508,
            "g_grad_norm": 0.08698210120201111,
            "critic_grad_norm": 0.21102166175842285,
            "d_loss": 0.7077583074569702,
            "d_accuracy": 0.421875,
            "nll_oracle": NAN,
            "nll_test": NAN,
        },
        {
            "step": 2.0,
            "reward": -0.7140313386917114,
            "d_fake": 0.4897240996360779,
            "return_mean": -0.5548943281173706,
            "advantage_mean": 0.05520693585276604,
            "advantage_clipped_frac": 0.0,
            "actor_loss": 0.975324273109436,
            "critic_loss": 0.010055680759251118,
            "explained_variance": 0.3281187415122986,
            "entropy": 3.089386224746704,
            "g_grad_norm": 0.1417563110589981,
            "critic_grad_norm": 0.17868997156620026,
            "d_loss": 0.7056605815887451,
            "d_accuracy": 0.46875,
            "nll_oracle": 4.549524135887623,
            "nll_test": 2.9502743681271872,
        },
        {
            "step": 3.0,
            "reward": -0.7137023210525513,
            "d_fake": 0.489867627620697,
            "return_mean": -0.5560994744300842,
            "advantage_mean": 0.008664526045322418,
            "advantage_clipped_frac": 0.0,
            "actor_loss": 0.23155485093593597,
            "critic_loss": 0.011045773513615131,
            "explained_variance": -0.05084395408630371,
            "entropy": 3.0859858989715576,
            "g_grad_norm": 0.15717244148254395,
            "critic_grad_norm": 0.06106037274003029,
            "d_loss": 0.7062102556228638,
            "d_accuracy": 0.453125,
            "nll_oracle": 4.597453705966473,
            "nll_test": 2.9520353147139153,
        },
    ],
    "maskgan": [
        {
            "step": 0.0,
            "fill_ppl": 13.69050586275131,
            "unique_2gram": 0.7931034482758621,
            "seen_2gram": 0.8793103448275862,
            "unique_3gram": 1.0,
            "seen_3gram": 0.1956521739130435,
            "unique_4gram": 1.0,
            "seen_4gram": 0.0,
            "bleu4": 0.29421384357985253,
            "eval_d_fake": 0.4287363588809967,
            "eval_d_real": 0.4292297661304474,
        },
        {
            "step": 1.0,
            "mle_loss": 2.584174156188965,
            "mle_ppl": 13.25234020641526,
            "g_grad_norm": 0.24773196876049042,
        },
        {
            "step": 2.0,
            "fill_ppl": 13.628416584188528,
            "unique_2gram": 0.7931034482758621,
            "seen_2gram": 0.8793103448275862,
            "unique_3gram": 1.0,
            "seen_3gram": 0.1956521739130435,
            "unique_4gram": 1.0,
            "seen_4gram": 0.0,
            "bleu4": 0.29421384357985253,
            "eval_d_fake": 0.4287363588809967,
            "eval_d_real": 0.4292297661304474,
            "mle_loss": 2.651381492614746,
            "mle_ppl": 14.173605858101118,
            "g_grad_norm": 0.29855087399482727,
        },
        {
            "step": 3.0,
            "d_loss": 0.7036530375480652,
            "d_accuracy": 0.5,
        },
        {
            "step": 4.0,
            "fill_ppl": 13.628416584188528,
            "unique_2gram": 0.7931034482758621,
            "seen_2gram": 0.8793103448275862,
            "unique_3gram": 1.0,
            "seen_3gram": 0.1956521739130435,
            "unique_4gram": 1.0,
            "seen_4gram": 0.0,
            "bleu4": 0.29421384357985253,
            "eval_d_fake": 0.433532178401947,
            "eval_d_real": 0.4341241717338562,
            "d_loss": 0.703281819820404,
            "d_accuracy": 0.5,
        },
        {
            "step": 5.0,
            "g_grad_norm": 1.349800944328308,
            "d_loss": 0.7011765241622925,
            "d_accuracy": 0.5,
            "reward": -0.8397052884101868,
            "d_fake": 0.43185922503471375,
            "return_mean": -1.700846791267395,
            "advantage_mean": -1.700846791267395,
            "advantage_std": 0.8253147006034851,
            "baseline_mse": 3.5595316886901855,
            "g_loss": -13.271483421325684,
            "sample_nll": 2.640455484390259,
        },
        {
            "step": 6.0,
            "g_grad_norm": 0.3916463255882263,
            "d_loss": 0.7018421292304993,
            "d_accuracy": 0.5,
            "reward": -0.8382515907287598,
            "d_fake": 0.4324794113636017,
            "return_mean": -1.3398098945617676,
            "advantage_mean": 0.3610369563102722,
            "advantage_std": 0.5250054001808167,
            "baseline_mse": 0.39872488379478455,
            "g_loss": 2.198355197906494,
            "sample_nll": 2.596947193145752,
        },
        {
            "step": 7.0,
            "fill_ppl": 13.631347587674718,
            "unique_2gram": 0.7931034482758621,
            "seen_2gram": 0.8793103448275862,
            "unique_3gram": 1.0,
            "seen_3gram": 0.1956521739130435,
            "unique_4gram": 1.0,
            "seen_4gram": 0.0,
            "bleu4": 0.29421384357985253,
            "eval_d_fake": 0.4404444992542267,
            "eval_d_real": 0.44113248586654663,
            "g_grad_norm": 0.4398690462112427,
            "d_loss": 0.7003771662712097,
            "d_accuracy": 0.5,
            "reward": -0.8281316161155701,
            "d_fake": 0.436877965927124,
            "return_mean": -1.6844977140426636,
            "advantage_mean": -0.019754597917199135,
            "advantage_std": 0.7167500257492065,
            "baseline_mse": 0.5044277906417847,
            "g_loss": -0.22789984941482544,
            "sample_nll": 2.6253104209899902,
        },
    ],
    "began": [
        {
            "step": 3.0,
            "loss_real": 0.7952988147735596,
            "loss_fake": 0.06358285248279572,
            "loss_d_fake": 0.07108064740896225,
            "k": 0.10975740849971771,
            "m_global": 1.5270147323608398,
            "lr": 0.001,
        },
        {
            "step": 6.0,
            "loss_real": 0.7874331474304199,
            "loss_fake": 0.0587950237095356,
            "loss_d_fake": 0.05532976984977722,
            "k": 0.21905313432216644,
            "m_global": 1.5160713195800781,
            "lr": 0.001,
        },
        {
            "step": 7.0,
            "loss_real": 0.7731724977493286,
            "loss_fake": 0.054484881460666656,
            "loss_d_fake": 0.04567261040210724,
            "k": 0.254987508058548,
            "m_global": 1.4918601512908936,
            "lr": 0.001,
        },
    ],
    "ppgn": [
        {
            "step": 1.0,
            "classifier/loss": 2.31045134862264,
            "classifier/acc": 0.09375,
        },
        {
            "step": 2.0,
            "generator_dgn/image": 0.679846982161204,
            "generator_dgn/feature": 0.009266595045725504,
            "generator_dgn/d_loss": 1.3772882620493572,
            "generator_dgn/adv": 0.6670740246772766,
            "generator_dgn/paused_d": 0.0,
            "generator_dgn/paused_g": 0.0,
        },
        {
            "step": 3.0,
            "generator_joint/image": 0.7956974705060323,
            "generator_joint/feature": 0.008974491618573666,
            "generator_joint/code": 0.0020970406476408243,
            "generator_joint/d_loss": 1.3968454599380493,
            "generator_joint/adv": 0.7480825980504354,
            "generator_joint/paused_d": 0.0,
            "generator_joint/paused_g": 0.0,
        },
        {
            "step": 4.0,
            "generator_noiseless_joint/image": 1.1368577082951863,
            "generator_noiseless_joint/feature": 0.010552841238677502,
            "generator_noiseless_joint/code": 0.001764324454901119,
            "generator_noiseless_joint/d_loss": 1.4256465832392375,
            "generator_noiseless_joint/adv": 0.6595617135365804,
            "generator_noiseless_joint/paused_d": 0.0,
            "generator_noiseless_joint/paused_g": 0.0,
        },
        {
            "step": 5.0,
            "dae_h/loss": 0.026793965448935825,
        },
        {
            "step": 6.0,
            "dae_x/loss": 0.8185988267262777,
        },
    ],
}


@pytest.mark.parametrize("name", ["reinforce", "bgan", "actor_critic"])
def test_text_agent_metrics_are_those_of_the_pre_redesign_code(tmp_path: Path, name: str) -> None:
    """Values of the pre-redesign code; ``reinforce`` includes the moving-average baseline."""
    _assert_rows(run_agent(name, tmp_path), EXPECTED[name])


def test_maskgan_metrics_are_those_of_the_pre_redesign_code(tmp_path: Path) -> None:
    """Values of the pre-redesign code, all three phases and a mid-run checkpoint."""
    _assert_rows(run_maskgan(tmp_path), EXPECTED["maskgan"])


def test_began_resumed_metrics_are_those_of_the_pre_redesign_code(tmp_path: Path) -> None:
    """Values of the pre-redesign code (its own checkpoint format) across a resume."""
    _assert_rows(run_began(tmp_path), EXPECTED["began"])


def test_ppgn_metrics_are_those_of_the_pre_redesign_code(tmp_path: Path) -> None:
    """Values of the pre-redesign code, one row per stage."""
    _assert_rows(run_ppgn(tmp_path), EXPECTED["ppgn"])
