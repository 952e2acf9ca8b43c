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

// -----
// topk by rank: an element's rank counts the elements before it (smaller here, or equal at a
// smaller index; NaN is the largest), and output position p picks the index of rank p.
// CHECK-LABEL: func.func private @topk
// CHECK:      te.compute {stage = "T_topk_rank", axes = ["ax0", "ax1", "k0"], reduce_extents = [5 : i64], combiner = "sum"} : tensor<3x5xi64> {
// CHECK:        %3 = arith.cmpf olt, %1, %2 : f32
// CHECK:        %13 = arith.cmpi slt, %k0, %ax1 : index
// CHECK:      te.compute {stage = "T_topk_indices", axes = ["ax0", "ax1", "k0"], reduce_extents = [5 : i64], combiner = "sum"} : tensor<3x2xi64> {
// CHECK:        %22 = arith.cmpi eq, %20, %21 : i64
// CHECK-NEXT:   %23 = arith.index_cast %k0_1 : index to i64
func.func private @topk(%x: tensor<3x5xf32>) -> tensor<3x2xi64> attributes {lathe.kernel} {
  %0 = graph.topk %x {k = 2 : i64, ret_type = "indices", is_ascend = true, dtype = "int64"} : (tensor<3x5xf32>) -> tensor<3x2xi64>
  func.return %0 : tensor<3x2xi64>
}

// -----
// arange is start + i * step, in f64 for a float result.
// CHECK-LABEL: func.func private @arange
// CHECK:        %4 = arith.mulf %2, %3 : f64
// CHECK-NEXT:   %5 = arith.constant 1.000000e+00 : f64
// CHECK-NEXT:   %6 = arith.addf %4, %5 : f64
func.func private @arange() -> tensor<3xf32> attributes {lathe.kernel} {
  %0 = graph.arange {start = 1.0 : f64, stop = 2.5 : f64, step = 0.5 : f64} : tensor<3xf32>
  func.return %0 : tensor<3xf32>
}

// -----

// A Winograd output transform (F(2, 3)) as two separable stages: the rows of Aᵀ M (each
// reads its column ν of the tile's products at rows ξ(m+2) + ν and chooses its row i of Aᵀ by
// a select), then each pixel combines the row y % 2 of those by the column x % 2 of Aᵀ; the
// selects fold once the template unrolls i and the tile's pixels.
// CHECK-LABEL: func.func private @winograd_output
// CHECK:      te.compute {stage = "T_winograd_output_rows", axes = ["i", "nu", "p", "k"]} : tensor<2x4x4x8xf32>
// CHECK-COUNT-4: te.read %m[%{{.*}}, %p, %k] : tensor<16x4x8xf32> -> f32
// CHECK-NOT:  te.read
// CHECK:      arith.cmpi eq, %i, %{{.*}} : index
// CHECK-NEXT: %[[R:.*]] = arith.select
// CHECK-NEXT: te.yield %[[R]] : f32
// CHECK:      te.compute {stage = "T_winograd_output", axes = ["n", "y", "x", "k"], anchor = "nn.contrib_winograd_output_transform"} : tensor<1x3x4x8xf32>
// CHECK:      %[[ROW:.*]] = arith.remsi %y, %{{.*}} : index
// CHECK-COUNT-4: te.read %0[%[[ROW]], %{{.*}}, %[[P:.*]], %k_1] : tensor<2x4x4x8xf32> -> f32
// CHECK:      %[[COL:.*]] = arith.remsi %x, %{{.*}} : index
// CHECK-NOT:  te.read
// CHECK:      arith.cmpi eq, %[[COL]], %{{.*}} : index
// CHECK-NEXT: %[[OUT:.*]] = arith.select
// CHECK-NEXT: te.yield %[[OUT]] : f32
func.func private @winograd_output(%m: tensor<16x4x8xf32>) -> tensor<1x3x4x8xf32> attributes {lathe.kernel} {
  %0 = graph.nn.contrib_winograd_output_transform %m {tile_size = 2, output_size = [3, 4]} : (tensor<16x4x8xf32>) -> tensor<1x3x4x8xf32>
  func.return %0 : tensor<1x3x4x8xf32>
}
