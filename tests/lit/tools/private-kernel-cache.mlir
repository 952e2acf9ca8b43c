// RUN: python -c "import os; print(os.environ.get('LATHE_CACHE_DIR', 'unset: the user cache'))" | filecheck %s

// Commands run by lit compile into a private kernel cache (pytest's, or lit's own when
// lit runs by itself), never into the user's ~/.cache/lathe.
// CHECK: {{lathe-(lit|test)-cache-}}
