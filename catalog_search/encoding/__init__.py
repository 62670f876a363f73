"""Dual encoders: where a model comes from (sources), loading it (encoders), where its forward passes run
(runtimes, onnx_export), preparing its inputs (images, preprocessing), the project's own model (modeling),
and which encoder search uses (active)."""
