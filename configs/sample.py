# The CPU profile's old name: the same settings as configs/cpu.py, results under output/cpu/ (one line says so).
parent = "cpu"
renamed = "cpu"
cfg = dict()
