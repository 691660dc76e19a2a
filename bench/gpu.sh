#!/usr/bin/env bash
# The GPU figures of bench/README.md ("GPU") in one command, under 8 minutes on one H100-class GPU:
# installs the CUDA build of the JAX already installed (same version), then runs
# bench/bench_pipeline.py at the mini and mega shapes in bf16 and int8 on random weights, 3x3
# grids, and prints one table (images/s, s/grid, compile s, peak device memory, share of the
# bandwidth limit) and the elapsed time. --smoke runs the same path on tiny shapes (a CPU, tests).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/gpu.sh [--skip-cuda-install] [--smoke] [--dtypes "bf16 int8"] [--cuda 12|13]

  --skip-cuda-install  use the JAX that is installed as it is (a CPU, or CUDA JAX already there)
  --smoke              tiny shapes, one timed loop each, small probes: the same code path in
                       about a minute on a CPU (tests/test_bench_gpu.py runs it)
  --dtypes LIST        the dtypes to run, space-separated (default "bf16 int8")
  --cuda 12|13         the CUDA major of the JAX plugin (default: 13 with an NVIDIA driver
                       >= 580, else 12; read from nvidia-smi)
EOF
}

skip_cuda_install=0
smoke=0
dtypes="bf16 int8"
cuda=""
while (($#)); do
    case "$1" in
        --skip-cuda-install) skip_cuda_install=1 ;;
        --smoke) smoke=1 ;;
        --dtypes) dtypes="${2:?--dtypes needs a list}"; shift ;;
        --cuda) cuda="${2:?--cuda needs 12 or 13}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-python3}"
started=$SECONDS

if ((!skip_cuda_install)); then
    if [[ -z "$cuda" ]]; then
        if ! command -v nvidia-smi >/dev/null; then
            echo "gpu.sh: no nvidia-smi here; give --cuda 12|13, or --skip-cuda-install" >&2
            exit 2
        fi
        driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)"
        cuda=12
        if ((${driver%%.*} >= 580)); then  # CUDA 13 needs driver 580 or newer
            cuda=13
        fi
        echo "NVIDIA driver $driver: CUDA $cuda"
    fi
    jax_version="$("$python" -c 'import jax; print(jax.__version__)')"
    echo "installing jax[cuda$cuda]==$jax_version"
    "$python" -m pip install --quiet --upgrade "jax[cuda$cuda]==$jax_version"
    "$python" -c 'import jax; assert jax.default_backend() == "gpu", jax.devices(); print(jax.devices())'
    echo "CUDA JAX installed in $((SECONDS - started)) s"
fi

# Allocate on demand, as the worker does on a GPU, instead of JAX's default 75% at the start.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"

if ((smoke)); then
    shapes=(smoke-mini smoke-mega)
    sizes=(--repeats 1 --probe-mib 64 --probe-side 512)
else
    shapes=(mini mega)
    sizes=(--repeats 3)
fi
arguments=()
for shape in "${shapes[@]}"; do arguments+=(--shape "$shape"); done
for dtype in $dtypes; do arguments+=(--dtype "$dtype"); done

"$python" bench/bench_pipeline.py "${arguments[@]}" "${sizes[@]}" --grid 3 --grid-only \
    --through-loader --skip-min-dalle --skip-no-kernel
echo "elapsed: $((SECONDS - started)) s (budget on one GPU: 480 s)"
