"""Synthetic runs for the analysis tests, written through the public ``Recorder``.

``make_run`` chooses the per-token entropy, log-prob and advantage arrays handed to
``record_batch`` so that the recorded step aggregates follow the trajectories asked for:

- ``entropy``: token-mean entropy H_t (exact);
- ``high_frac``: share of tokens above 0.672 nats (``None``: follows from H, tokens are H·w with
  w exponentially distributed, so the share is about exp(−0.672/H));
- ``reward``: reward mean (exact); ``zero_adv``: share of groups whose rewards are all equal;
- ``cov``: ``cov_mean`` (exact up to float32: the log-probs carry c/Var(A)·(A − mean A) plus a
  part orthogonal to A);
- ``resp_len``: every response's length in tokens;
- ``law=(a, b)``: evaluations R = b − a·e^H (+ ``eval_noise``) every ``eval_every`` steps, or
  ``evals``: a curve for them; ``greedy=True`` also logs ``val/accuracy_greedy``;
- ``extra``: more step scalars (``entropy_after=...``).

Each trajectory is a number, an array with one value per step, or a function of u = t/(steps−1)
in [0, 1]. High-entropy tokens get ids 0–3 (text "abcd" with ``CharTokenizer``), the others 10–35.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from entrodiag import Recorder


def curve(spec, steps: int) -> np.ndarray:
    if callable(spec):
        u = np.linspace(0.0, 1.0, steps) if steps > 1 else np.zeros(1)
        return np.broadcast_to(np.asarray(spec(u), dtype=np.float64), (steps,)).copy()
    arr = np.asarray(spec, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(steps, float(arr))
    assert len(arr) == steps, f"trajectory of length {len(arr)} for {steps} steps"
    return arr


def _token_entropy(rng, n: int, H: float, high: float | None) -> np.ndarray:
    if high is None:
        w = -np.log(1.0 - (np.arange(n) + 0.5) / n)
        h = H * w / w.mean()
    else:
        k = int(round(high * n))
        if k == 0:
            h = np.full(n, H)
        elif k == n:
            h = np.full(n, max(H, 0.7))
        else:
            lo = min(0.65, H) * 0.95
            hi = (H * n - (n - k) * lo) / k
            if hi <= 0.7:  # H too low for that share: put the high tokens at 0.9, lower the rest
                hi = 0.9
                lo = max((H * n - k * hi) / (n - k), 0.0)
            h = np.concatenate([np.full(k, hi), np.full(n - k, lo)])
    return rng.permutation(h)


def make_run(
    path, *, steps: int = 60, entropy=0.8, reward=0.4, cov=0.0, zero_adv=0.1, high_frac=None,
    resp_len=12, law=None, evals=None, eval_every: int = 4, eval_noise: float = 0.0,
    eval_name: str = "val/accuracy_sampled", greedy: bool = False, B: int = 32, G: int = 4, T: int = 16,
    token_sample=4, tokenizer=None, seed: int = 0, extra: dict | None = None, on_step=None, **meta,
):
    """Write a run to ``path`` and return it (``load_run``); see the module docstring.
    ``on_step(t)`` is called after step t is recorded (to pace a run that another process
    follows); ``meta`` also takes Recorder settings such as ``flush_interval_s``."""
    from entrodiag import load_run

    rng = np.random.default_rng(seed)
    H, R, C = curve(entropy, steps), curve(reward, steps), curve(cov, steps)
    Z, L = curve(zero_adv, steps), curve(resp_len, steps)
    S = None if high_frac is None else curve(high_frac, steps)
    extra = {k: curve(v, steps) for k, v in (extra or {}).items()}
    eval_steps = sorted(set(range(0, steps, eval_every)) | ({steps - 1} if steps else set()))
    if law is not None:
        a, b = law
        ev = b - a * np.exp(H[eval_steps]) + rng.normal(0, eval_noise, len(eval_steps))
    elif evals is not None:
        ev = curve(evals, steps)[eval_steps]
    else:
        ev = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is 2x faster than OpenMP's per-op overhead
    try:
        _record(path, H, R, C, Z, L, S, extra, ev, eval_steps, rng=rng, B=B, G=G, T=T, eval_name=eval_name,
                greedy=greedy, on_step=on_step,
                recorder={"token_sample": token_sample, "tokenizer": tokenizer, "seed": seed, **meta})
    finally:
        torch.set_num_threads(threads)
    return load_run(path)


def _record(path, H, R, C, Z, L, S, extra, ev, eval_steps, *, rng, B, G, T, eval_name, greedy, on_step, recorder):
    steps, n_groups = len(H), B // G
    groups = torch.arange(B) // G
    offsets = np.linspace(-0.3, 0.3, G)  # zero-mean rewards within a group that has a signal
    with Recorder(path, **{"flush_interval_s": 60, "heartbeat_s": 60, **recorder}) as rec:
        for t in range(steps):
            length = int(min(T, max(1, round(L[t]))))
            mask = torch.zeros(B, T, dtype=torch.bool)
            mask[:, :length] = True
            n = B * length
            h_valid = _token_entropy(rng, n, float(H[t]), None if S is None else float(S[t]))
            h = np.zeros((B, T))
            h[:, :length] = h_valid.reshape(B, length)
            cut = np.quantile(h_valid, 0.8)
            ids = np.where(h >= cut, rng.integers(0, 4, (B, T)), rng.integers(10, 36, (B, T)))
            n_zero = int(round(Z[t] * n_groups))
            rewards = np.repeat(np.full(n_groups, R[t]), G) + np.tile(offsets, n_groups)
            rewards[: n_zero * G] = R[t]
            rewards_t = torch.tensor(rewards)
            grouped = rewards.reshape(n_groups, G)  # GRPO advantages: (r − group mean) / group std
            adv = ((grouped - grouped.mean(1, keepdims=True)) / (grouped.std(1, ddof=1, keepdims=True) + 1e-6)).ravel()
            A = np.repeat(adv[:, None], T, axis=1)
            m = mask.numpy()
            a_c = A - A[m].mean()
            lp = -1.0 - 0.5 * h
            var_a = float((a_c[m] ** 2).mean())
            if var_a > 0:
                lp_c = lp - lp[m].mean()
                lp = lp - (float((lp_c[m] * a_c[m]).mean()) / var_a) * a_c + (C[t] / var_a) * a_c
            rec.record_batch(
                t, token_ids=torch.tensor(ids), response_mask=mask, advantages=torch.tensor(adv, dtype=torch.float32),
                entropy=torch.tensor(h, dtype=torch.float32), logprobs=torch.tensor(lp, dtype=torch.float32),
                rewards=rewards_t.float(), group_ids=groups, **{k: float(v[t]) for k, v in extra.items()},
            )
            if ev is not None and t in eval_steps:
                i = eval_steps.index(t)
                rec.log_eval(t, eval_name, float(ev[i]), n=500)
                if greedy:
                    rec.log_eval(t, "val/accuracy_greedy", float(min(1.0, ev[i] + 0.3)), n=500)
            if on_step is not None:
                on_step(t)


_CACHE: dict = {}


def cached_run(tmp_path_factory, name: str, **settings):
    """``make_run`` once per test session and name (runs shared by several test modules)."""
    if name not in _CACHE:
        _CACHE[name] = make_run(tmp_path_factory.getbasetemp() / "analysis-runs" / name, **settings)
    return _CACHE[name]


def healthy(**kw) -> dict:
    """Settings of a run no detector should flag: entropy eases from 0.9 to 0.65 nats, the reward
    and the evaluations still rise (the law leaves most of its gain ahead), the covariance changes
    sign, few zero-advantage groups, constant response length, an MI proxy that holds."""
    base = dict(
        steps=80, entropy=lambda u: 0.9 - 0.25 * u, reward=lambda u: 0.3 + 0.3 * u,
        cov=lambda u: 0.02 * np.sin(12 * math.pi * u), zero_adv=0.1, law=(0.4, 1.3),
        extra={"mi_proxy": lambda u: 1.0 - 0.1 * u},  # the MI proxy holds (template_collapse judges it)
    )
    base.update(kw)
    return base
