"""Exports of a fitted pipeline: ONNX (for a lean runtime) and SQL (to score in a database).

Both translators cover part of scikit-learn, and both run constants in float32, so an export is
only used after it has been compared with the pipeline on the whole holdout. A pipeline that does
not convert is an answer (recorded with the reason), never an error. The heavy modules
(skl2onnx, orbital, duckdb) are imported only by :mod:`skylift.exports.build`; the runtime
(:mod:`skylift.exports.onnx_runtime`) needs numpy and onnxruntime only.
"""

from skylift.exports.records import ExportCheck, Exports

__all__ = ["ExportCheck", "Exports"]
