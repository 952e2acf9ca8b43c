// RUN: not lathe-opt %s 2>&1 | filecheck %s
// An unterminated string fails at once (xDSL's own string rule takes exponential time here).

func.func @f() {
  %0 = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
}
// CHECK: unterminated-string.mlir:5:8: error: unterminated string literal
