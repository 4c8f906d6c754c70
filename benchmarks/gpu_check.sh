#!/usr/bin/env bash
# One prepared check for a lent GPU (an H100-class card), run from the repository root:
#
#     bash benchmarks/gpu_check.sh
#
# Prints the GPU and torch, then
#   (a)  training images/s, resnet50 batch 128: our fast path vs the plain DataLoader loop
#   (b)  the 21-level resnet50 sweep of 10,000 synthetic test images: our sweep (bf16, plus the
#        fp32 rerun it does for the accuracy comparison) vs the seed's way on 3 levels,
#        extrapolated per level
#   (c)  one resnet50 epoch on the 10,000 synthetic training images through engine.training.train
#        (precision auto = bf16 on CUDA)
#   (d)  with >= 2 GPUs: one such epoch on all of them through `prunelab train --devices N`
# and a summary block. Expected well under 6 minutes on an H100; every step has its own timeout.
# Logs go to $OUT/gpu_check/ when $OUT is set, else to a temporary folder.
# GPU_CHECK_SMOKE=1 runs the same steps tiny on the CPU (resnet20), to test the script itself.
set -u
cd "$(dirname "$0")/.."
T0=$(date +%s)
LOGS="${OUT:-$(mktemp -d)}/gpu_check"
mkdir -p "$LOGS"

heading() { printf '\n==== %s  (t=%ss) ====\n' "$1" "$(($(date +%s) - T0))"; }

DEVICE=cuda MODEL=resnet50 STEPS=50 STEPS2=30 WARMUP=5 TEST_SIZE=10000 CAL=1024 PROBE=2048 SUBSET=0
if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
    DEVICE=cpu MODEL=resnet20 STEPS=4 STEPS2=2 WARMUP=1 TEST_SIZE=3000 CAL=128 PROBE=256 SUBSET=2000
fi

heading "python and packages"
PY=""
for candidate in .venv/bin/python python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c "import torch; assert torch.cuda.is_available() or '$DEVICE' == 'cpu'" >/dev/null 2>&1; then
        PY="$candidate"
        break
    fi
done
if [ -z "$PY" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
            PY="$candidate"
            break
        fi
    done
fi
if [ -z "$PY" ]; then
    PY=python3
    echo "no python with torch found; trying: $PY -m pip install -q -e ."
    "$PY" -m pip install -q -e . || echo "pip install failed: install torch + torchvision by hand, then rerun"
fi
echo "python: $(command -v "$PY")"
if ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
    # Keep the torch that is there: pin it so pip does not swap it for another build.
    CONSTRAINTS="$LOGS/constraints.txt"
    "$PY" -c "import torch; print('torch==' + torch.__version__)" >"$CONSTRAINTS" 2>/dev/null || : >"$CONSTRAINTS"
    echo "torchvision missing: pip install -q -e . (keeping $(cat "$CONSTRAINTS"))"
    timeout 120 "$PY" -m pip install -q -e . -c "$CONSTRAINTS" ||
        echo "pip install -e . failed (no registry access?); the benchmarks need only torch + torchvision"
fi
if ! "$PY" -c "import torch, torchvision" 2>&1; then
    echo "FATAL: torch and torchvision are needed; install them and rerun"
    exit 1
fi

heading "device"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>&1 || echo "nvidia-smi not available"
"$PY" - <<'EOF'
import torch, torchvision
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}")
print("cuda available:", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
EOF

run_step() {  # run_step NAME SECONDS command...
    local name=$1 seconds=$2
    shift 2
    heading "$name"
    echo "+ $*"
    timeout --kill-after=10 "$seconds" "$@" 2>&1 | tee "$LOGS/$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "!! $name timed out after ${seconds}s" | tee -a "$LOGS/$name.log"
    elif [ "$rc" -ne 0 ]; then
        echo "!! $name failed (exit $rc)" | tee -a "$LOGS/$name.log"
    fi
}

run_step a_train_throughput 110 "$PY" benchmarks/train_throughput.py --model "$MODEL" \
    --batch-size 128 --steps "$STEPS" --warmup "$WARMUP" --rounds 2 --device "$DEVICE" --dataset synthetic
run_step b_sweep_speed 150 "$PY" benchmarks/sweep_speed.py --model "$MODEL" --levels 0:100:5 \
    --synthetic-test-size "$TEST_SIZE" --test-subset "$SUBSET" --precision bf16 --device "$DEVICE" \
    --seed-levels 0,50,100 --calibrate-images "$CAL" --probe-images "$PROBE"
run_step c_train_epoch 100 "$PY" benchmarks/train_epoch.py --model "$MODEL" --epochs 1 \
    --device "$DEVICE" --dataset synthetic --precision auto

# (d) one epoch of data-parallel training through `prunelab train --devices N` (torch's launcher,
#     NCCL, one rank per GPU, global batch 128 per GPU); needs >= 2 GPUs (smoke: 2 CPU ranks, gloo)
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
NDEV=$NGPU
[ "${GPU_CHECK_SMOKE:-0}" = 1 ] && NDEV=2
if [ "$NDEV" -ge 2 ]; then
    run_step d_ddp_epoch 150 "$PY" -m tui.cli train --devices "$NDEV" --device "$DEVICE" \
        --model "$MODEL" --dataset synthetic --epochs 1 --batch-size $((128 * NDEV)) \
        --train-subset "$SUBSET" --run-dir "$LOGS/runs" --checkpoint-dir "$LOGS/checkpoints"
else
    heading "d_ddp_epoch"
    echo "skipped: $NGPU GPU(s); NCCL data-parallel training needs one GPU per rank"
fi

heading "SUMMARY"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
for name in a_train_throughput a2_train_throughput_cudnn_benchmark b_sweep_speed c_train_epoch d_ddp_epoch; do
    log="$LOGS/$name.log"
    [ -f "$log" ] || continue
    echo "-- $name"
    grep -h "^ours \|^plain \|^ratio\|^seed's way \|^ours fp32\|^accuracy\|^     *max\|^target\|^epoch\|^wall\|^!!" "$log"
done
echo
grep -h "^SUMMARY" "$LOGS"/*.log 2>/dev/null || echo "no results"
echo "total: $(($(date +%s) - T0)) s; logs in $LOGS"
