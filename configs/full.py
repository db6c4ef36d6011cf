# The GPU profile's old name: the same settings as configs/gpu.py, results under output/gpu/ (one line says so).
parent = "gpu"
renamed = "gpu"
cfg = dict()
