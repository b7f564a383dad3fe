# final code: the GPU-capable test files on the H200
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
set -o pipefail
timeout 420 python -m pytest -q tests/test_gluon.py tests/test_kernel.py tests/test_runtime.py -p no:randomly 2>&1 | tee $OUT/gpu-tests.log | tail -8
