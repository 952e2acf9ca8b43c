// RUN: not lathe-opt %s 2>&1 | filecheck %s
// xDSL checks this attribute while parsing the op; the error points at the op, not a traceback.

func.func private @k(%a: tensor<7x13xf32>) -> tensor<7xf32> {
  %0 = te.compute {stage = "s", axes = ["i", "k"], reduce_extents = [13], combiner = "sum"} : tensor<7xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<7x13xf32> -> f32
    te.yield %1 : f32
  }
  te.unroll %0 {axis = 0} : tensor<7xf32>
  func.return %0 : tensor<7xf32>
}
// CHECK: attribute-checked-while-parsing.mlir:10:3: error: te.unroll: 0 : i64 should be of base attribute string
// CHECK-NEXT: te.unroll %0 {axis = 0} : tensor<7xf32>
// CHECK-NEXT: ^
// CHECK-NEXT: the parser stopped at 11:3
