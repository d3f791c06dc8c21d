"""SPiRL closed-loop skill prior (spirl/model.py) and its pre-training (spirl/pretrain.py). Tiny sizes throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rolf.datasets.offline import save_trajectories
from rolf.utils.checkpoint import CheckpointError, load_checkpoint
from spirl.model import LOG_PROB_MAX, LOG_PROB_MIN, Predictor, SPiRLConfig, SPiRLModel, gaussian_log_prob
from spirl.pretrain import (PretrainConfig, kitchen_goal, load_buffers, load_spirl_prior, main, pretrain, state_assembler,
                            to_batch)

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(nz_mid=32, nz_enc=32, nz_mid_lstm=32, n_processing_layers=2, num_prior_net_layers=2)


def _toy_file(path: Path, n: int = 20, T: int = 30, obs_dim: int = 4, action_dim: int = 2, seed: int = 0) -> Path:
    """Trajectories whose actions are a fixed function of the state: learnable by the closed-loop decoder."""
    rng = np.random.default_rng(seed)
    trajs = []
    for _ in range(n):
        obs = rng.uniform(-1, 1, size=(T, obs_dim)).astype(np.float32)
        act = np.tanh(2.0 * obs[:, :action_dim]).astype(np.float32)
        trajs.append({"obs": obs, "actions": act, "dones": np.zeros(T, np.float32)})
    save_trajectories(path, trajs)
    return path


def _model(seed: int = 0, **kw) -> SPiRLModel:
    torch.manual_seed(seed)
    return SPiRLModel(SPiRLConfig(state_dim=4, action_dim=2, **{**TINY, **kw}))


def _batch(b: int = 8, h: int = 10, d_s: int = 4, d_a: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"states": torch.randn(b, h + 1, d_s, generator=g), "actions": torch.rand(b, h, d_a, generator=g) * 2 - 1}


def test_architecture_and_shapes():
    torch.manual_seed(0)
    full = SPiRLModel(SPiRLConfig.for_env("kitchen"))
    c = full.cfg
    assert (c.state_dim, c.action_dim, c.kl_div_weight, c.nz_vae, c.n_rollout_steps) == (60, 9, 5e-4, 10, 10)
    assert SPiRLConfig.for_env("maze").kl_div_weight == 1e-3 and SPiRLConfig.for_env("calvin").state_dim == 21
    lin = [m for m in full.decoder if isinstance(m, torch.nn.Linear)]
    bns = [m for m in full.decoder if isinstance(m, torch.nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in lin] == \
        [(70, 128, True)] + [(128, 128, False)] * 5 + [(128, 9, True)]
    assert len(bns) == 5 and len([m for m in full.prior if isinstance(m, torch.nn.BatchNorm1d)]) == 6
    assert full.prior[-1].out_features == 20 and full.encoder.embed.in_features == 69
    assert full.encoder.head.out_features == 20 and full.encoder.output.out_features == 128
    b = full.encoder.lstm.bias_ih_l0
    assert torch.all(b[128:256] == 1.0) and torch.all(full.encoder.lstm.bias_hh_l0[128:256] == 1.0)

    m = _model()
    total, info = m.loss(_batch())
    assert total.shape == () and torch.isfinite(total)
    assert {"total", "rec_mse", "kl_loss", "q_hat_loss", "action_mse"} <= set(info)
    mu, log_sigma = m.posterior(_batch()["states"][:, :10], _batch()["actions"])
    assert mu.shape == (8, 10) and log_sigma.min() >= -10 and log_sigma.max() <= 2
    p = m.prior_dist(torch.randn(5, 4))
    assert isinstance(p, torch.distributions.Normal) and p.loc.shape == (5, 10) and p.scale.shape == (5, 10)
    s, z = torch.randn(5, 4), torch.randn(5, 10)
    a = m.decode_action(s, z)
    assert a.shape == (5, 2) and a.abs().max() < 1
    assert m.decoder.training and torch.equal(a, torch.tanh(m.decoder.eval()(torch.cat([s, z], -1))))
    with pytest.raises(ValueError, match="states have shape"):
        m.loss({"states": torch.randn(8, 11, 5), "actions": torch.randn(8, 10, 2)})


def test_loss_terms_match_definitions():
    m = _model(kl_div_weight=0.5, reconstruction_mse_weight=2.0)
    torch.manual_seed(3)
    total, info = m.loss(_batch())
    assert torch.allclose(total, 2.0 * info["rec_mse"] + 0.5 * info["kl_loss"] + info["q_hat_loss"])
    assert torch.allclose(info["rec_mse"], 0.5 * info["action_mse"] + 0.5 * np.log(2 * np.pi))
    # spirl's MultivariateGaussian clamps the summed log-density to [-20, 10]
    x = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    lp = gaussian_log_prob(torch.zeros(2, 2), torch.full((2, 2), -10.0), x)
    assert lp[0] == LOG_PROB_MAX and lp[1] == LOG_PROB_MIN


def test_prior_loss_gradient_reaches_only_the_prior():
    m = _model(kl_div_weight=0.0, reconstruction_mse_weight=0.0, prior_nll_clamp=False)  # total = prior NLL only
    total, _ = m.loss(_batch())
    total.backward()
    assert all(p.grad is None or not p.grad.any() for p in m.encoder.parameters())
    assert all(p.grad is None or not p.grad.any() for p in m.decoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.prior.parameters())
    m2 = _model()  # with the reconstruction term the encoder does learn
    m2.loss(_batch())[0].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m2.encoder.parameters())


def test_freeze_for_rl_freezes_batchnorm():
    m = _model()
    for _ in range(3):  # some running statistics
        m.loss(_batch())
    s, z = torch.randn(6, 4), torch.randn(6, 10)
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    a_train = m.decode_action(s, z)  # uses running statistics even in train mode and leaves them untouched
    assert m.decoder.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    m.freeze_for_rl()
    assert not any(p.requires_grad for p in m.parameters())
    m.train()  # a frozen model stays in eval mode
    out_train = m.decoder(torch.cat([s, z], -1))
    m.eval()
    assert torch.equal(out_train, m.decoder(torch.cat([s, z], -1)))
    assert torch.equal(m.decode_action(s, z), a_train) and torch.equal(a_train, torch.tanh(out_train))
    m.train()
    m.loss(_batch())  # even the loss's forward pass in "train" mode updates no BatchNorm statistics now
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert torch.allclose(m.decode_action(s, z, deterministic=False), a_train, atol=1e-3)
    # the high-level policy's copy: trainable, same outputs, BatchNorm statistics frozen
    pol = m.prior_policy_init()
    assert isinstance(pol, Predictor) and all(p.requires_grad for p in pol.parameters())
    pol.train()
    assert torch.equal(pol(s), m.prior(s))
    assert not any(b.training for b in pol.modules() if isinstance(b, torch.nn.BatchNorm1d))


def test_loss_decreases_on_toy_dataset(tmp_path):
    torch.set_num_threads(1)
    data = _toy_file(tmp_path / "toy.gz")
    cfg = PretrainConfig(env="maze", data=str(data), out=str(tmp_path / "run"), steps=50, batch_size=32, lr=1e-2,
                         init_grad_clip_steps=10, log_every=10, eval_every=50, val_batches=2, ckpt_every=1000, split=0.9)
    path = pretrain(cfg, model_overrides=TINY)
    assert path.name == "maze_ckpt_00000000050.pt" and path.is_file()
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    train = {r["step"]: r for r in rows if "train/total" in r}
    assert train[50]["train/total"] < train[10]["train/total"] - 1.0
    assert train[50]["train/action_mse"] < 0.5 * train[10]["train/action_mse"]
    assert any("val/total" in r for r in rows)


def test_cli_checkpoint_roundtrip_and_resume(tmp_path, capsys):
    data = _toy_file(tmp_path / "maze.gz", n=6, T=25)
    out = tmp_path / "prior"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "spirl.pretrain", "--env", "maze", "--data", str(data), "--out", str(out),
                        "--steps", "20", "--batch-size", "8", "--ckpt-every", "10", "--log-every", "10",
                        "--eval-every", "10", "--val-batches", "1", "--device", "cpu"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    weights = sorted(p.name for p in (out / "weights").iterdir())
    assert weights == ["maze_ckpt_00000000010.pt", "maze_ckpt_00000000020.pt"]
    ckpt = load_checkpoint(out / "weights" / weights[-1])
    assert ckpt["step"] == 20 and ckpt["agent"]["env"] == "maze" and "optimizer" in ckpt

    m = load_spirl_prior(out, state_dim=4, action_dim=2)  # the directory -> its newest checkpoint
    assert m.cfg == SPiRLConfig.for_env("maze") and m.frozen and not m.training
    assert all(torch.equal(v, ckpt["agent"]["model"][k]) for k, v in m.state_dict().items())
    s, z = torch.randn(1, 4), torch.randn(1, 10)  # batch of one works: BatchNorm in eval mode
    assert torch.equal(m.decode_action(s, z), load_spirl_prior(out / "weights" / weights[-1]).decode_action(s, z))
    with pytest.raises(CheckpointError, match="state_dim 4"):
        load_spirl_prior(out, state_dim=60)
    with pytest.raises(CheckpointError, match="not found"):
        load_spirl_prior(tmp_path / "nowhere")

    # resume: the same --out continues from step 20
    torch.set_num_threads(1)
    assert main(["--env", "maze", "--data", str(data), "--out", str(out), "--steps", "22", "--batch-size", "8",
                 "--device", "cpu", "--val-batches", "1"]) == 0
    assert "maze_ckpt_00000000022.pt" in capsys.readouterr().out
    assert load_checkpoint(out / "weights" / "maze_ckpt_00000000022.pt")["step"] == 22


def test_kitchen_and_calvin_states(tmp_path):
    goal = kitchen_goal()
    assert goal.shape == (30,) and goal.dtype == np.float32 and np.count_nonzero(goal) > 0
    ob = torch.randn(3, 11, 30)
    st = state_assembler("kitchen")(ob)
    assert st.shape == (3, 11, 60) and torch.equal(st[..., :30], ob)
    assert torch.equal(st[..., 30:], torch.as_tensor(goal).expand(3, 11, 30))
    assert state_assembler("maze")(ob) is ob

    rng = np.random.default_rng(0)
    kitchen = _toy_file(tmp_path / "kitchen.gz", n=3, T=15, obs_dim=30, action_dim=9)
    train, _ = load_buffers("kitchen", kitchen, 0.99, rng)
    batch = to_batch(train.sample(4, 11), state_assembler("kitchen"), 10, "cpu")
    assert batch["states"].shape == (4, 11, 60) and batch["actions"].shape == (4, 10, 9)
    assert torch.equal(batch["states"][..., 30:], torch.as_tensor(goal).expand(4, 11, 30))
    m = SPiRLModel(SPiRLConfig.for_env("kitchen", **TINY))
    assert torch.isfinite(m.loss(batch)[0])

    calvin = _toy_file(tmp_path / "calvin.gz", n=3, T=15, obs_dim=39, action_dim=7)
    train, _ = load_buffers("calvin", calvin, 0.99, rng)
    batch = to_batch(train.sample(4, 11), state_assembler("calvin"), 10, "cpu")
    assert batch["states"].shape == (4, 11, 21) and batch["actions"].shape == (4, 10, 7)


def test_bad_input_gives_one_line_errors(tmp_path, capsys):
    def run(*args) -> str:
        assert main(["--out", str(tmp_path / "out"), "--device", "cpu", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        return err

    assert "file not found" in run("--env", "maze", "--data", str(tmp_path / "missing.gz"))
    wrong = _toy_file(tmp_path / "wide.gz", n=2, T=15, obs_dim=60, action_dim=9)  # 60-d kitchen obs: we expect 30
    assert "expected (T, 30)" in run("--env", "kitchen", "--data", str(wrong))
    short = _toy_file(tmp_path / "short.gz", n=2, T=8)
    assert "11 steps" in run("--env", "maze", "--data", str(short))
    assert "batch_size must be >= 1" in run("--env", "maze", "--data", str(short), "--batch-size", "0")


def test_pretraining_resumes_exactly_and_a_signal_checkpoints_where_it_is(tmp_path):
    """6 steps in one go == 4 steps, then resumed to 6: the same weights and rows (RNGs travel in the checkpoint;
    the split is at a log step, as a run always logs at the end of its budget). A SIGTERM in a CLI run writes a checkpoint at its step and prints the command
    that resumes it."""
    import json
    import signal
    import time

    from spirl.pretrain import PretrainConfig, pretrain

    data = _toy_file(tmp_path / "maze.gz", n=6, T=25)
    torch.set_num_threads(1)

    def run(out, steps):
        cfg = PretrainConfig(env="maze", data=str(data), out=str(out), steps=steps, batch_size=8, log_every=2,
                             eval_every=2, val_batches=1, ckpt_every=1000, split=0.8)
        pretrain(cfg, model_overrides=TINY)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return load_checkpoint(out / "weights" / f"maze_ckpt_{steps:011d}.pt"), [
            {k: v for k, v in r.items() if "steps_per_sec" not in k} for r in rows]

    straight, rows_a = run(tmp_path / "a", 6)
    run(tmp_path / "b", 4)
    resumed, rows_b = run(tmp_path / "b", 6)
    assert rows_a == rows_b
    assert all(torch.equal(v, resumed["agent"]["model"][k]) for k, v in straight["agent"]["model"].items())

    out = tmp_path / "cli"
    args = ["--env", "maze", "--data", str(data), "--out", str(out), "--steps", "100000", "--batch-size", "8",
            "--log-every", "1", "--eval-every", "100000", "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, "-m", "spirl.pretrain", *args], cwd=ROOT, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 3):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    line = err.strip().splitlines()[-1]  # after the console log lines
    assert "Traceback" not in err
    saved = sorted((out / "weights").glob("*.pt"))
    assert len(saved) == 1 and load_checkpoint(saved[0])["reason"] == "signal"
    step = load_checkpoint(saved[0])["step"]
    assert line == (f"interrupted (SIGTERM) at SPiRL prior pre-training step {step:,}; saved {saved[0]}; resume with: "
                    f"python -m spirl.pretrain {' '.join(args)}")
