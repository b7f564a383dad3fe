# final code and tables: test_kernel.py and test_runtime.py on the H200 again (after the tables' export and the combine test's fix), and the fp8 launch emulations
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 300 python -m pytest -q tests/test_kernel.py tests/test_runtime.py tests/test_gluon.py -k "not test_gluon.py or launch_passes" -p no:randomly > $OUT/gpu-tests-final.log 2>&1; echo "tests rc=$?"; tail -4 $OUT/gpu-tests-final.log | cut -c1-250
