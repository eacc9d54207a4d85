"""Export stage: trained models -> self-contained, verified bundles (ONNX + native + transforms + manifest)."""
