"""The fused Triton entropy kernel (entrodiag.kernels.entropy) against an fp64 reference.

On CPU the kernel runs in Triton's interpreter. ``TRITON_INTERPRET=1`` must be set before triton
is first imported (triton's own ``tl.*`` helpers are decorated then), so one worker process runs
the kernel on every case below and the tests compare its outputs here; the test process itself
never switches to the interpreter. On a CUDA machine one more test runs the compiled kernel
through ``entropy_and_logprobs``.
"""

import math
import os
import subprocess
import sys
import warnings

import pytest
import torch

import entrodiag.kernels as K
from entrodiag import metrics as M

try:
    import triton  # noqa: F401

    TRITON_ERROR = None
except Exception as exc:  # not installed, or installed but broken: say which
    TRITON_ERROR = f"triton is not importable ({type(exc).__name__}: {exc}); pip install 'entrodiag[triton]'"
needs_triton = pytest.mark.skipif(TRITON_ERROR is not None, reason=TRITON_ERROR or "")


def reference(logits, ids, temperature=1.0):
    """fp64 entropy and log-prob, full softmax (shares no code with the kernel or metrics)."""
    z = logits.double() / temperature
    logp = torch.log_softmax(z, dim=-1)
    p = logp.exp()
    h = -torch.where(p > 0, p * logp, 0.0).sum(-1)
    lp = logp.gather(-1, ids.clamp(0, z.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    return h, lp


WORKER = r"""
import sys
import numpy as np
import torch
from entrodiag.kernels import entropy as E

assert type(E._entropy_logprob_kernel).__name__ == "InterpretedFunction", "not interpreted"
out = {}
with np.errstate(all="ignore"):  # the interpreter computes with numpy: NaN/inf cases warn
    for name, c in torch.load(sys.argv[1], weights_only=True).items():
        if "hidden" in c:
            h, lp = E.fused_entropy_and_logprobs_from_hidden(c["hidden"], c["weight"], c["ids"], c["temperature"])
        else:
            logits = c["logits"][:, :-1] if c["shift"] else c["logits"]
            h, lp = E.fused_entropy_and_logprobs(logits, c["ids"], c["temperature"], block_v=c["block_v"])
        out[name] = {"h": h, "lp": lp}
torch.save(out, sys.argv[2])
"""

NUMERIC = {  # name: shape, dtype, temperature, tolerance
    "bf16-32000": ((4, 32000), torch.bfloat16, 1.0, 1e-3),  # Llama-2's vocabulary, 8 blocks of 4096
    "fp32-4099-T0.7": ((3, 5, 4099), torch.float32, 0.7, 2e-5),  # last block holds 3 entries
    "fp16-37-T1.5": ((7, 37), torch.float16, 1.5, 1e-3),  # small, odd V
    "bf16-151-T2": ((2, 3, 151), torch.bfloat16, 2.0, 1e-3),
    "fp32-1": ((6, 1), torch.float32, 1.0, 1e-6),  # one token: H = 0, log p = 0
}


def make_cases():
    """name -> dict(logits, ids, temperature, block_v, shift); deterministic."""
    cases = {}
    for name, (shape, dtype, temperature, _) in NUMERIC.items():
        g = torch.Generator().manual_seed(sum(shape))
        logits = (torch.randn(*shape, generator=g) * 4).to(dtype)
        ids = torch.randint(0, shape[-1], shape[:-1], generator=g)
        cases[name] = dict(logits=logits, ids=ids, temperature=temperature, block_v=None, shift=False)
    # logits rising / falling along the vocabulary, 64-entry blocks: the running maximum moves in
    # every block / only in the first, exercising the rescaling of S and W
    g = torch.Generator().manual_seed(11)
    for direction in (1.0, -1.0):
        logits = direction * torch.linspace(-30, 30, 1000) + torch.randn(5, 1000, generator=g)
        ids = torch.randint(0, 1000, (5,), generator=g)
        cases[f"moving-max{direction:+.0f}"] = dict(logits=logits, ids=ids, temperature=1.3, block_v=64, shift=False)
    # [B, T+1, V] model output shifted to [B, T, V] without a copy (not viewable as rows); masked
    # vocabulary entries (-inf, top-k style) in some rows; padding ids -100 past each length
    g = torch.Generator().manual_seed(12)
    B, T, V = 3, 6, 300
    full = (torch.randn(B, T + 1, V, generator=g) * 3).to(torch.bfloat16)
    full[0, 2, 10:] = -math.inf  # 10 allowed tokens
    full[1, 0, 1:] = -math.inf  # one allowed token: H = 0
    ids = torch.randint(0, 10, (B, T), generator=g)
    ids[1, 0] = 0
    ids = torch.where(ragged_valid(), ids, -100)
    cases["ragged"] = dict(logits=full, ids=ids, temperature=1.0, block_v=None, shift=True)
    z = torch.randn(6, 50, generator=g)
    z[0, 7] = math.nan  # NaN row
    z[1, 3] = math.inf  # +inf row
    z[2] = -math.inf  # every entry masked
    z[3, :40] = -math.inf  # masked entries, the sampled token among them: log p = -inf
    z[4, 45] = -math.inf
    ids = torch.tensor([0, 3, 0, 5, 1, 2])
    cases["nonfinite"] = dict(logits=z, ids=ids, temperature=1.0, block_v=None, shift=False)
    for name, (shape, vocab, dtype, temperature, _) in HIDDEN.items():
        g = torch.Generator().manual_seed(vocab)
        hidden = torch.randn(*shape, generator=g).to(dtype)
        weight = (torch.randn(vocab, shape[-1], generator=g) * 0.7).to(dtype)
        ids = torch.randint(0, vocab, shape[:-1], generator=g)
        ids.view(-1)[::5] = -100  # padding positions: NaN log-prob, entropy still computed
        cases[name] = dict(hidden=hidden, weight=weight, ids=ids, temperature=temperature)
    return cases


HIDDEN = {  # name: hidden shape, V, dtype, temperature, tolerance; 64-wide vocabulary tiles
    "hidden-fp32": ((20, 48), 1000, torch.float32, 0.7, 2e-5),  # V, D and rows not tile multiples
    "hidden-bf16": ((2, 9, 40), 301, torch.bfloat16, 1.0, 1e-3),
    "hidden-fp16": ((5, 32), 77, torch.float16, 1.3, 1e-3),
}


def hidden_reference(hidden, weight, ids, temperature):
    return reference(hidden.double() @ weight.double().T, ids, temperature)


def ragged_valid():
    return torch.arange(6)[None, :] < torch.tensor([6, 4, 1])[:, None]


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    """(cases, outputs): the kernel run on every case by one TRITON_INTERPRET=1 worker."""
    folder = tmp_path_factory.mktemp("kernel")
    cases = make_cases()
    torch.save(cases, folder / "in.pt")
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("ENTRODIAG_DISABLE_TRITON", None)
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(folder / "in.pt"), str(folder / "out.pt")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cases, torch.load(folder / "out.pt", weights_only=True)


@needs_triton
@pytest.mark.parametrize("name", list(NUMERIC))
def test_kernel_matches_fp64_reference(interpreted, name):
    cases, out = interpreted
    c, (_, _, temperature, tol) = cases[name], NUMERIC[name]
    h, lp = out[name]["h"], out[name]["lp"]
    assert h.dtype == lp.dtype == torch.float32 and h.shape == lp.shape == c["ids"].shape
    ref_h, ref_lp = reference(c["logits"], c["ids"], temperature)  # the same rounded logits, fp64
    torch.testing.assert_close(h.double(), ref_h, atol=tol, rtol=0)
    torch.testing.assert_close(lp.double(), ref_lp, atol=tol, rtol=0)


@needs_triton
@pytest.mark.parametrize("name", list(HIDDEN))
def test_hidden_state_kernel_matches_fp64_reference(interpreted, name):
    # the variant that never materialises the logits: hidden @ weightᵀ in tiles
    cases, out = interpreted
    c, tol = cases[name], HIDDEN[name][-1]
    h, lp = out[name]["h"], out[name]["lp"]
    assert h.shape == lp.shape == c["ids"].shape and h.dtype == torch.float32
    ref_h, ref_lp = hidden_reference(c["hidden"], c["weight"], c["ids"], c["temperature"])
    valid = c["ids"] >= 0
    torch.testing.assert_close(h.double(), ref_h, atol=tol, rtol=0)
    torch.testing.assert_close(lp[valid].double(), ref_lp[valid], atol=tol, rtol=0)
    assert torch.isnan(lp[~valid]).all()


def test_hidden_state_function_chunked_path_and_errors():
    g = torch.Generator().manual_seed(21)
    hidden = torch.randn(3, 7, 24, generator=g)
    weight = torch.randn(50, 24, generator=g)
    ids = torch.randint(0, 50, (3, 7), generator=g)
    for chunk_rows in (None, 1, 4):
        h, lp = M.entropy_and_logprobs_from_hidden(hidden, weight, ids, temperature=1.4, chunk_rows=chunk_rows)
        ref_h, ref_lp = hidden_reference(hidden, weight, ids, 1.4)
        torch.testing.assert_close(h.double(), ref_h, atol=1e-5, rtol=0)
        torch.testing.assert_close(lp.double(), ref_lp, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"weight must be \[V, D\] with D = hidden's last dimension 24"):
        M.entropy_and_logprobs_from_hidden(hidden, weight[:, :20], ids)
    with pytest.raises(ValueError, match="must match hidden"):
        M.entropy_and_logprobs_from_hidden(hidden, weight.double(), ids)
    with pytest.raises(ValueError, match=r"hidden is \(3, 7, 24\), token_ids is \(3, 6\)"):
        M.entropy_and_logprobs_from_hidden(hidden, weight, ids[:, :6])
    with pytest.raises(ValueError, match=r"\[0, 50\)"):
        M.entropy_and_logprobs_from_hidden(hidden, weight, ids + 10)


@needs_triton
@pytest.mark.parametrize("name", ["moving-max+1", "moving-max-1"])
def test_online_rescaling_when_the_maximum_moves_between_blocks(interpreted, name):
    cases, out = interpreted
    ref_h, ref_lp = reference(cases[name]["logits"], cases[name]["ids"], 1.3)
    torch.testing.assert_close(out[name]["h"].double(), ref_h, atol=2e-5, rtol=0)
    torch.testing.assert_close(out[name]["lp"].double(), ref_lp, atol=2e-5, rtol=0)


@needs_triton
def test_ragged_masked_rows_on_a_shifted_noncontiguous_batch(interpreted):
    cases, out = interpreted
    logits, ids = cases["ragged"]["logits"][:, :-1], cases["ragged"]["ids"]
    assert not logits.is_contiguous()
    h, lp = out["ragged"]["h"], out["ragged"]["lp"]
    valid = ragged_valid()
    ref_h, ref_lp = reference(logits, ids)
    torch.testing.assert_close(h.double(), ref_h, atol=1e-4, rtol=0)  # every row, padded ones too
    torch.testing.assert_close(lp[valid].double(), ref_lp[valid], atol=1e-4, rtol=0)
    assert torch.isnan(lp[~valid]).all()  # out-of-range id: NaN, not an out-of-bounds read
    assert h[1, 0].item() == pytest.approx(0.0, abs=1e-6) and lp[1, 0].item() == pytest.approx(0.0, abs=1e-6)


@needs_triton
def test_nonfinite_logits_give_what_the_chunked_path_gives(interpreted):
    cases, out = interpreted
    z, ids = cases["nonfinite"]["logits"], cases["nonfinite"]["ids"]
    h, lp = out["nonfinite"]["h"], out["nonfinite"]["lp"]
    ch, clp = M.entropy_and_logprobs(z, ids)  # the chunked path on CPU
    assert torch.equal(torch.isnan(h), torch.isnan(ch)) and torch.isnan(h[:3]).all()
    assert torch.equal(torch.isnan(lp), torch.isnan(clp)) and torch.isnan(lp[:3]).all()
    assert lp[3].item() == -math.inf == clp[3].item()
    torch.testing.assert_close(h[3:], ch[3:], atol=1e-5, rtol=0)
    torch.testing.assert_close(lp[4:], clp[4:], atol=1e-5, rtol=0)


COMPILE_CASES = {  # kernel, pointer/scalar types, constexprs, num_warps
    "logits-bf16": ("_entropy_logprob_kernel", {"logits_ptr": "*bf16", "ids_ptr": "*i64"}, {"BLOCK_V": 4096, "SCALE": False}, 8),
    "logits-fp32-T": ("_entropy_logprob_kernel", {"logits_ptr": "*fp32", "ids_ptr": "*i32"}, {"BLOCK_V": 4096, "SCALE": True}, 8),
    "hidden-bf16": ("_hidden_entropy_logprob_kernel", {"hidden_ptr": "*bf16", "weight_ptr": "*bf16"},
                    {"BLOCK_N": 32, "BLOCK_V": 64, "BLOCK_D": 32, "IEEE": False, "WIDEN": False}, 4),
    "hidden-fp32": ("_hidden_entropy_logprob_kernel", {"hidden_ptr": "*fp32", "weight_ptr": "*fp32"},
                    {"BLOCK_N": 32, "BLOCK_V": 64, "BLOCK_D": 32, "IEEE": True, "WIDEN": False}, 4),
}


@needs_triton
@pytest.mark.parametrize("name", list(COMPILE_CASES))
def test_kernels_compile_to_a_cubin_for_sm90_without_a_device(name):
    # the interpreter runs the kernels as numpy and checks little of what the compiler checks
    # (types of loop-carried values, 0-d tensors, dot shapes); triton ships ptxas, so the real
    # compiler runs here down to a Hopper (H100/H200) binary, no GPU needed
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set in this process")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from entrodiag.kernels import entropy as E

    kernel_name, types, constexprs, warps = COMPILE_CASES[name]
    kernel = getattr(E, kernel_name)
    signature = {a: "constexpr" if a in constexprs else types.get(a, "*fp32" if a.endswith("_ptr") else "i32")
                 for a in kernel.arg_names}
    signature["inv_temperature"] = "fp32"
    compiled = triton.compile(
        ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", 90, 32),
        options={"num_warps": warps, "enable_fp_fusion": True},
    )
    assert len(compiled.asm["cubin"]) > 1000 and ".entry" in compiled.asm["ptx"]


def test_dispatch_uses_the_kernel_and_falls_back_once_with_a_warning(monkeypatch):
    logits = torch.randn(4, 7, 33)
    ids = torch.randint(0, 33, (4, 7))
    calls = []

    def kernel(z, k, temperature):  # stands in for the Triton function (same signature)
        calls.append(temperature)
        return tuple(x.float() for x in reference(z, k, temperature))

    monkeypatch.setattr(M, "_fused_failed", {})
    monkeypatch.delenv("ENTRODIAG_DISABLE_TRITON", raising=False)
    monkeypatch.setattr(K, "load_entropy_kernel", lambda kind: kernel)
    h, _ = M._fused_entropy("logits", logits, ids, 0.8)
    assert calls == [0.8] and torch.equal(h, reference(logits, ids, 0.8)[0].float())
    monkeypatch.setenv("ENTRODIAG_DISABLE_TRITON", "1")
    assert M._fused_entropy("logits", logits, ids, 0.8) is None and len(calls) == 1
    monkeypatch.delenv("ENTRODIAG_DISABLE_TRITON")

    def broken(*args):
        calls.append("broken")
        raise RuntimeError("PTX assembly failed")

    monkeypatch.setattr(K, "load_entropy_kernel", lambda kind: broken)
    with pytest.warns(RuntimeWarning, match="PTX assembly failed.*chunked PyTorch path"):
        assert M._fused_entropy("logits", logits, ids, 0.8) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, and the kernel is not tried again
        assert M._fused_entropy("logits", logits, ids, 0.8) is None
    assert calls == [0.8, "broken"]
    assert M._fused_failed == {"logits": True}  # the hidden-state kernel is still tried


def test_entrodiag_works_without_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton now raises ImportError
    monkeypatch.delitem(sys.modules, "entrodiag.kernels.entropy", raising=False)
    monkeypatch.delattr(K, "entropy", raising=False)  # the submodule, if an earlier test imported it
    monkeypatch.setitem(K._cache, "module", K._UNSET)
    assert K.load_entropy_kernel() is None and K.load_entropy_kernel("hidden") is None
    monkeypatch.setattr(M, "_fused_failed", {})
    assert M._fused_entropy("logits", torch.randn(2, 5), torch.zeros(2, dtype=torch.long), 1.0) is None
    h, _ = M.entropy_and_logprobs(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(h, torch.full((2,), math.log(4)))


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_kernel_on_cuda_through_entropy_and_logprobs(monkeypatch):
    monkeypatch.delenv("ENTRODIAG_DISABLE_TRITON", raising=False)
    monkeypatch.setattr(M, "_fused_failed", {})
    assert K.load_entropy_kernel() is not None
    g = torch.Generator().manual_seed(13)
    for shape, dtype, temperature, tol in list(NUMERIC.values()) + [((64, 151936), torch.bfloat16, 1.0, 1e-3)]:
        logits = (torch.randn(*shape, generator=g) * 4).to(dtype)
        ids = torch.randint(0, shape[-1], shape[:-1], generator=g)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a fallback warning would fail the test
            h, lp = M.entropy_and_logprobs(logits.cuda(), ids.cuda(), temperature=temperature)
        assert not M._fused_failed
        ref_h, ref_lp = reference(logits, ids, temperature)
        torch.testing.assert_close(h.cpu().double(), ref_h, atol=tol, rtol=0)
        torch.testing.assert_close(lp.cpu().double(), ref_lp, atol=tol, rtol=0)
    z = torch.randn(3, 5, 4000, device="cuda")[:, 1:]  # shifted, not viewable as rows
    ids = torch.randint(0, 4000, (3, 4), device="cuda")
    h, lp = M.entropy_and_logprobs(z, ids)
    ref_h, ref_lp = reference(z.cpu(), ids.cpu())
    torch.testing.assert_close(h.cpu().double(), ref_h, atol=2e-5, rtol=0)
    torch.testing.assert_close(lp.cpu().double(), ref_lp, atol=2e-5, rtol=0)
    for name, (shape, vocab, dtype, temperature, tol) in HIDDEN.items():
        hidden = torch.randn(*shape, generator=g).to(dtype)
        weight = (torch.randn(vocab, shape[-1], generator=g) * 0.7).to(dtype)
        ids = torch.randint(0, vocab, shape[:-1], generator=g)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            h, lp = M.entropy_and_logprobs_from_hidden(hidden.cuda(), weight.cuda(), ids.cuda(), temperature=temperature)
        assert not M._fused_failed
        ref_h, ref_lp = hidden_reference(hidden, weight, ids, temperature)
        torch.testing.assert_close(h.cpu().double(), ref_h, atol=tol, rtol=0)
        torch.testing.assert_close(lp.cpu().double(), ref_lp, atol=tol, rtol=0)
