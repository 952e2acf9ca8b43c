// RUN: lathe-opt %s | filecheck %s
// RUN: lathe-opt %s --print-op-generic | lathe-opt | filecheck %s

// CHECK-LABEL: func.func private @row_sum
// CHECK:      %0 = te.compute {stage = "row_sum", axes = ["i", "k"], reduce_extents = [13 : i64], combiner = "sum"} : tensor<7xf32> {
// CHECK-NEXT: ^bb0(%i: index, %k: index):
// CHECK-NEXT:   %1 = te.read %a[%i, %k] : tensor<7x13xf32> -> f32
// CHECK-NEXT:   te.yield %1 : f32
// CHECK-NEXT: }
// CHECK-NEXT: te.split %0 {axis = "i", factor = 4 : i64, outer = "i.o", inner = "i.i"} : tensor<7xf32>
// CHECK-NEXT: te.reorder %0 {order = ["i.i", "i.o"]} : tensor<7xf32>
// CHECK-NEXT: te.fuse %0 {fuse_axes = ["i.i", "i.o"], fused = "f"} : tensor<7xf32>
// CHECK-NEXT: te.parallel %0 {axis = "f"} : tensor<7xf32>
// CHECK-NEXT: te.vectorize %0 {axis = "k"} : tensor<7xf32>
// CHECK-NEXT: te.unroll %0 {axis = "k"} : tensor<7xf32>
func.func private @row_sum(%a: tensor<7x13xf32>) -> tensor<7xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "row_sum", axes = ["i", "k"], reduce_extents = [13], combiner = "sum"} : tensor<7xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<7x13xf32> -> f32
    te.yield %1 : f32
  }
  te.split %0 {axis = "i", factor = 4, outer = "i.o", inner = "i.i"} : tensor<7xf32>
  te.reorder %0 {order = ["i.i", "i.o"]} : tensor<7xf32>
  te.fuse %0 {fuse_axes = ["i.i", "i.o"], fused = "f"} : tensor<7xf32>
  te.parallel %0 {axis = "f"} : tensor<7xf32>
  te.vectorize %0 {axis = "k"} : tensor<7xf32>
  te.unroll %0 {axis = "k"} : tensor<7xf32>
  func.return %0 : tensor<7xf32>
}
