"""Model importers: other formats → graph-dialect modules (`lathe.frontends.onnx.from_onnx`)."""
