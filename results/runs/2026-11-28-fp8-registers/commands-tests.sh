# final code: test_kernel.py and test_runtime.py on the H200 (not run on the GPU with the last stop's code)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 470 python -m pytest -q tests/test_kernel.py tests/test_runtime.py -p no:randomly > $OUT/gpu-tests-kernel-runtime.log 2>&1; echo "tests rc=$?"; tail -15 $OUT/gpu-tests-kernel-runtime.log | cut -c1-250
