"""The CUDA backend (see backend.py): NVPTX through llvmlite, the driver through cuda-bindings."""
