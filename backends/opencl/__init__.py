"""The OpenCL backend (see backend.py): a plug-in, reached only through the `lathe.backends` entry point."""
