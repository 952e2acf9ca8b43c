// RUN: lathe-opt %s --split-input-file -p lower-graph-to-te | filecheck %s

// nn.dense is a sum over k of x[i, k] * w[j, k].
// CHECK-LABEL: func.func private @dense
// CHECK:      %0 = te.compute {stage = "T_dense", axes = ["i0", "j", "k"], reduce_extents = [8 : i64], combiner = "sum"} : tensor<2x4xf32> {
// CHECK-NEXT: ^bb0(%i0: index, %j: index, %k: index):
// CHECK-NEXT:   %1 = te.read %x[%i0, %k] : tensor<2x8xf32> -> f32
// CHECK-NEXT:   %2 = te.read %w[%j, %k] : tensor<4x8xf32> -> f32
// CHECK-NEXT:   %3 = arith.mulf %1, %2 : f32
// CHECK-NEXT:   te.yield %3 : f32
func.func private @dense(%x: tensor<2x8xf32>, %w: tensor<4x8xf32>) -> tensor<2x4xf32> attributes {lathe.kernel} {
  %0 = graph.nn.dense %x, %w : (tensor<2x8xf32>, tensor<4x8xf32>) -> tensor<2x4xf32>
  func.return %0 : tensor<2x4xf32>
}

// -----
// Broadcasting reads index 0 on broadcast dimensions of the smaller operand.
// CHECK-LABEL: func.func private @badd
// CHECK:      te.compute {stage = "T_add", axes = ["ax0", "ax1"]} : tensor<3x5xf32> {
// CHECK-NEXT: ^bb0(%ax0: index, %ax1: index):
// CHECK-NEXT:   %1 = te.read %a[%ax0, %ax1] : tensor<3x5xf32> -> f32
// CHECK-NEXT:   %2 = arith.constant 0 : index
// CHECK-NEXT:   %3 = te.read %b[%2, %ax1] : tensor<1x5xf32> -> f32
// CHECK-NEXT:   %4 = arith.addf %1, %3 : f32
func.func private @badd(%a: tensor<3x5xf32>, %b: tensor<1x5xf32>) -> tensor<3x5xf32> attributes {lathe.kernel} {
  %0 = graph.add %a, %b : (tensor<3x5xf32>, tensor<1x5xf32>) -> tensor<3x5xf32>
  func.return %0 : tensor<3x5xf32>
}

// -----
// relu is max(x, 0); ops outside kernels are left alone.
// CHECK-LABEL: func.func @glue
// CHECK-NEXT:  graph.nn.relu
// CHECK-LABEL: func.func private @relu
// CHECK:        %2 = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:   %3 = arith.maximumf %1, %2 : f32
func.func @glue(%a: tensor<4xf32>) -> tensor<4xf32> {
  %0 = graph.nn.relu %a : (tensor<4xf32>) -> tensor<4xf32>
  func.return %0 : tensor<4xf32>
}
func.func private @relu(%a: tensor<4xf32>) -> tensor<4xf32> attributes {lathe.kernel} {
  %0 = graph.nn.relu %a : (tensor<4xf32>) -> tensor<4xf32>
  func.return %0 : tensor<4xf32>
}
