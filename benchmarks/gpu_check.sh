#!/usr/bin/env bash
# The GPU check, run by hand on a CUDA machine from the repository root; results go to
# benchmarks/README.md. Usage: bash benchmarks/gpu_check.sh OUTDIR [PART]
#
# PART (default `pending`) says what to run. A lent device has 15 minutes in all, so each part is
# time-boxed and `pending` holds only the measurements no GPU session has made yet:
#   pending  (8.5 min at most; 10.5 with a real model) the Triton kernel's tests and bandwidth on
#            [16384, 151936] bf16 (target >= 70% of peak), the Recorder's overhead on a SmolLM2-sized
#            bf16 step (target <= 3%), trainer vs TRL on the GPU (tiny; smollm2 too when its GGUF is
#            staged), and the entropy-control experiment on tiny-arith (3 seeds x none/pi_coef/
#            pi_clip; then a real model when ENTRODIAG_REAL_MODEL names a local Hugging Face
#            folder)                                                             [issues 17, 18]
#   smollm2  SmolLM2-135M-Instruct: smollm2-arith under none, clip_cov, kl_cov and clip_higher
#            (gpu_smollm2.sh, ~10 min; SMOLLM2_GGUF=PATH or the GGUF in $ENTRODIAG_CACHE/models/,
#            since the machine is offline and `carry` holds at most 64 MiB)                [issue 15]
#   base     what the first GPU session measured (stop 11): the CUDA test, the demo's training
#            timed, 20 steps of a random ~40M Llama, torchrun with NCCL, analyze of the GPU demo
#   all      base, pending and smollm2
set -uo pipefail
out=${1:-/tmp/gpu-check}
part=${2:-pending}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 ENTRODIAG_CACHE=${ENTRODIAG_CACHE:-/tmp/entrodiag-cache}
here=$(dirname "$0")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"

base() {
python3 -m pytest -q -p no:cacheprovider tests/test_crash_and_distributed.py -k cuda 2>&1 | tail -3
t0=$(date +%s.%N)
entrodiag train --preset tiny-arith --out /tmp/gpu-demo --no-progress > "$out/demo.log" 2>&1; echo "demo train rc=$?"
t1=$(date +%s.%N)
echo "demo (warm start + 450 steps) wall: $(awk "BEGIN{print $t1-$t0}") s"
tail -5 "$out/demo.log"
entrodiag analyze /tmp/gpu-demo > "$out/analyze.txt" 2>&1; echo "analyze rc=$?"; head -40 "$out/analyze.txt"
python3 benchmarks/gpu_check.py /tmp/hf-model
t0=$(date +%s.%N)
entrodiag train --model /tmp/hf-model --task probes/arith.jsonl --steps 20 --max-new-tokens 6 --val-size 100 \
  --eval-every 10 --out /tmp/gpu-hf --no-progress > "$out/hf.log" 2>&1; echo "hf train rc=$?"
t1=$(date +%s.%N)
echo "hf 40M x 20 steps wall: $(awk "BEGIN{print $t1-$t0}") s"; tail -5 "$out/hf.log"
torchrun --nproc_per_node 1 --no-python entrodiag train --preset tiny-arith-test --steps 6 --out /tmp/gpu-ddp \
  --no-progress > "$out/ddp.log" 2>&1; echo "torchrun nccl rc=$?"; tail -3 "$out/ddp.log"
python3 - <<'PY'
from entrodiag import load_run
for p in ("/tmp/gpu-demo", "/tmp/gpu-hf", "/tmp/gpu-ddp"):
    try:
        r = load_run(p); s = r.steps
        print(p, r.status, r.meta.get("config", {}).get("device"), "steps", s.height,
              "step_time median %.4f s" % s["step_time"].median(),
              "entropy %.3f -> %.3f" % (s["entropy_mean"].head(10).mean(), s["entropy_mean"].tail(10).mean()))
        print(r.evals.group_by("name").agg(first=__import__("polars").col("value").first(), last=__import__("polars").col("value").last()))
    except Exception as e:
        print(p, "ERROR", e)
PY
tar -czf "$out/gpu-demo-run.tar.gz" -C /tmp gpu-demo --exclude checkpoints
}

pending() {

# --- fused Triton entropy kernel (issue 17): its tests on the GPU, then its bandwidth on
# [16384, 151936] bf16 against the card's peak (target >= 70%); results in $out/kernel.json
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py 2>&1 | tail -3
timeout 90 python3 benchmarks/bench_kernel_gpu.py --json "$out/kernel.json"; echo "kernel bench rc=$?"

# --- the Recorder's overhead on a real-model-sized GPU step (issue 17, target <= 3%): SmolLM2-135M's
# architecture, 32 x 256 tokens, bf16 autocast, steps with and without record_batch alternated
timeout 90 python3 benchmarks/bench_recorder.py --device cuda --shapes smollm2 --steps 20 2>&1 | tee "$out/recorder.txt" | tail -3

# --- the built-in trainer against TRL's GRPOTrainer on the GPU (issue 17), when TRL installs there:
# the tiny configuration, and smollm2 when SmolLM2-135M-Instruct is staged (see gpu_smollm2.sh)
if python3 -c "import trl" 2>/dev/null; then
  cfgs=tiny
  if [ -n "${SMOLLM2_GGUF:-}" ] || [ -f "$ENTRODIAG_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    mkdir -p "$ENTRODIAG_CACHE/models"
    [ -f "$ENTRODIAG_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" ] || cp "$SMOLLM2_GGUF" "$ENTRODIAG_CACHE/models/"
    cfgs=tiny,smollm2
  fi
  timeout 120 python3 benchmarks/bench_trainer_vs_trl.py --device cuda --config "$cfgs" --rounds 3 \
    --json "$out/vs_trl_gpu.json" > "$out/vs_trl_gpu.txt" 2> "$out/vs_trl_gpu.log"; echo "trainer vs TRL (GPU) rc=$?"
  tail -22 "$out/vs_trl_gpu.txt"
else
  echo "SKIP trainer vs TRL on the GPU: trl is not installed (pip install 'entrodiag[trl]')"
fi

# --- entropy control (issue 18): 3 seeds x none/pi_coef/pi_clip on tiny-arith (450 steps), then a real model if given
timeout 150 python3 benchmarks/bench_entropy_control.py --out /tmp/gpu-control --jobs 3 --train-args "--device cuda" \
  --json "$out/control.json" > "$out/control.txt" 2> "$out/control.log"; echo "control bench rc=$?"; cat "$out/control.txt"
if [ -n "${ENTRODIAG_REAL_MODEL:-}" ]; then
  timeout 120 python3 benchmarks/bench_entropy_control.py --out /tmp/gpu-control-real --seeds 0 --steps 200 --jobs 3 \
    --train-args "--device cuda --model $ENTRODIAG_REAL_MODEL --task probes/arith.jsonl --max-new-tokens 6" \
    --json "$out/control-real.json" > "$out/control-real.txt" 2> "$out/control-real.log"
  echo "control bench (real model) rc=$?"; cat "$out/control-real.txt"
fi
}

case "$part" in
    pending) pending ;;
    smollm2) bash "$here/gpu_smollm2.sh" "$out" ;;
    base) base ;;
    all) base; pending; bash "$here/gpu_smollm2.sh" "$out" ;;
    *) echo "unknown part $part: pending, smollm2, base or all" >&2; exit 2 ;;
esac
