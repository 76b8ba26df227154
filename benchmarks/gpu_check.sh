#!/usr/bin/env bash
# The GPU check, run by hand on a CUDA machine from the repository root (results in
# benchmarks/README.md). Usage: bash benchmarks/gpu_check.sh OUTDIR
# 1. the CUDA test of the suite; 2. the demo's training (tiny-arith preset) on the GPU, timed;
# 3. 20 steps of a random ~40M-parameter Hugging Face Llama (bf16 autocast) on a JSONL task;
# 4. torchrun with NCCL (one process); 5. entrodiag analyze on the GPU demo run.
# `bash benchmarks/gpu_check.sh OUTDIR smollm2` runs only the real-model section (issue 15, at the
# end): the smollm2-arith preset under none, clip_cov, kl_cov and clip_higher, the four runs at
# once on the one GPU (a 135M model leaves it mostly idle; ~10 minutes), then the step split.
# It needs the gguf package and SmolLM2-135M-Instruct.Q4_1.gguf (93 MB; the machine is offline):
# set SMOLLM2_GGUF=PATH, or have it in $ENTRODIAG_CACHE/models/.
# Issue 17: the Triton kernel's bandwidth, the Recorder's overhead on a SmolLM2-sized bf16 step
# (bench_recorder.py --device cuda), the trainer-vs-TRL ratio on the GPU (bench_trainer_vs_trl.py
# --device cuda: tiny, and smollm2 when its GGUF is staged; skipped without trl).

# 4. torchrun with NCCL (one process); 5. entrodiag analyze on the GPU demo run;
# 6. the entropy-control experiment (benchmarks/bench_entropy_control.py) on tiny-arith on the GPU,
#    and on a real model when ENTRODIAG_REAL_MODEL names a local Hugging Face folder (pending until
#    a GPU is lent: results go to benchmarks/README.md, "Entropy control").
set -uo pipefail
out=${1:-/tmp/gpu-check}
part=${2:-all}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 ENTRODIAG_CACHE=${ENTRODIAG_CACHE:-/tmp/entrodiag-cache}
if [ "$part" = "smollm2" ]; then
    bash "$(dirname "$0")/gpu_smollm2.sh" "$out"
    exit $?
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
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

# --- fused Triton entropy kernel (issue 17): its tests on the GPU, then its bandwidth on
# [16384, 151936] bf16 against the card's peak (target >= 70%); results in $out/kernel.json
python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py 2>&1 | tail -3
python3 benchmarks/bench_kernel_gpu.py --json "$out/kernel.json"; echo "kernel bench rc=$?"

# --- the Recorder's overhead on a real-model-sized GPU step (issue 17, target <= 3%): SmolLM2-135M's
# architecture, 32 x 256 tokens, bf16 autocast, steps with and without record_batch alternated
python3 benchmarks/bench_recorder.py --device cuda --shapes smollm2 --steps 20 2>&1 | tee "$out/recorder.txt" | tail -3

# --- the built-in trainer against TRL's GRPOTrainer on the GPU (issue 17), when TRL installs there:
# the tiny configuration, and smollm2 when SmolLM2-135M-Instruct is staged (see gpu_smollm2.sh)
if python3 -c "import trl" 2>/dev/null; then
  cfgs=tiny
  if [ -n "${SMOLLM2_GGUF:-}" ] || [ -f "$ENTRODIAG_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    mkdir -p "$ENTRODIAG_CACHE/models"
    [ -f "$ENTRODIAG_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" ] || cp "$SMOLLM2_GGUF" "$ENTRODIAG_CACHE/models/"
    cfgs=tiny,smollm2
  fi
  timeout 420 python3 benchmarks/bench_trainer_vs_trl.py --device cuda --config "$cfgs" --rounds 3 \
    --json "$out/vs_trl_gpu.json" > "$out/vs_trl_gpu.txt" 2> "$out/vs_trl_gpu.log"; echo "trainer vs TRL (GPU) rc=$?"
  tail -22 "$out/vs_trl_gpu.txt"
else
  echo "SKIP trainer vs TRL on the GPU: trl is not installed (pip install 'entrodiag[trl]')"
fi

# --- a real model (issue 15): SmolLM2-135M-Instruct, smollm2-arith under four interventions
bash "$(dirname "$0")/gpu_smollm2.sh" "$out"

# 6. entropy control: 3 seeds x none/pi_coef/pi_clip on tiny-arith (450 steps), then a real model if given
python3 benchmarks/bench_entropy_control.py --out /tmp/gpu-control --jobs 3 --train-args "--device cuda" \
  --json "$out/control.json" > "$out/control.txt" 2> "$out/control.log"; echo "control bench rc=$?"; cat "$out/control.txt"
if [ -n "${ENTRODIAG_REAL_MODEL:-}" ]; then
  python3 benchmarks/bench_entropy_control.py --out /tmp/gpu-control-real --seeds 0 --steps 200 --jobs 3 \
    --train-args "--device cuda --model $ENTRODIAG_REAL_MODEL --task probes/arith.jsonl --max-new-tokens 6" \
    --json "$out/control-real.json" > "$out/control-real.txt" 2> "$out/control-real.log"
  echo "control bench (real model) rc=$?"; cat "$out/control-real.txt"
fi
