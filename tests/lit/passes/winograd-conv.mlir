// RUN: lathe-opt %s --split-input-file -p winograd-conv | filecheck %s
// RUN: lathe-opt %s --split-input-file -p 'winograd-conv{vector_lanes=1}' | filecheck %s --check-prefix=ONE
// RUN: lathe-opt %s --split-input-file -p winograd-conv,fold-constant,fuse-ops,lower-graph-to-te,apply-default-schedule | filecheck %s --check-prefix=KERNEL

// A 3x3 stride-1 NHWC layer with a constant weight at 14x14 becomes F(4x4, 3x3): the input
// transform (the padding read inside it) into [36, tiles, C], a batch of 36 GEMMs against the
// weight transformed by G (an op that fold-constant evaluates) and packed as alter-op-layout
// packs a batch_matmul's weight, and the output transform back to NHWC. A one-lane target
// (a GPU) keeps the direct convolution.
// CHECK-LABEL: func.func @f4
// CHECK:      %[[V:.*]] = graph.nn.contrib_winograd_input_transform %x {padding = [1 : i64, 1 : i64, 1 : i64, 1 : i64]} : (tensor<1x14x14x64xf32>) -> tensor<36x16x64xf32>
// CHECK-NEXT: %[[U:.*]] = graph.nn.contrib_winograd_weight_transform %w : (tensor<3x3x64x64xf32>) -> tensor<36x64x64xf32>
// CHECK-NEXT: %[[R:.*]] = graph.reshape %[[U]] {newshape = [36 : i64, 64 : i64, 2 : i64, 32 : i64]}
// CHECK-NEXT: %[[P:.*]] = graph.transpose %[[R]] {axes = [0 : i64, 2 : i64, 1 : i64, 3 : i64]} : (tensor<36x64x2x32xf32>) -> tensor<36x2x64x32xf32>
// CHECK-NEXT: %[[M:.*]] = graph.nn.contrib_batch_matmul_pack %[[V]], %[[P]] : (tensor<36x16x64xf32>, tensor<36x2x64x32xf32>) -> tensor<36x16x64xf32>
// CHECK-NEXT: graph.nn.contrib_winograd_output_transform %[[M]] {output_size = [14 : i64, 14 : i64]} : (tensor<36x16x64xf32>) -> tensor<1x14x14x64xf32>
// CHECK-NOT:  graph.nn.conv2d
// ONE-LABEL:  func.func @f4
// ONE-NOT:    winograd
// ONE:        graph.nn.conv2d
// The transforms' kernels take their templates: a task per tile and vector of channels, the
// tile's coefficients (pixels) unrolled around the vector.
// The separable transforms' first halves (Bᵀ d, Aᵀ M) are computed per task into a scratch
// tile (kept in registers once the loops are unrolled), which the coefficients (pixels) read.
// KERNEL-LABEL: func.func private @nn_contrib_winograd_input_transform_0
// KERNEL:       %[[ROWS:.*]] = te.compute {stage = "T_winograd_input_rows", axes = ["xi", "j", "p", "c"]} : tensor<6x6x16x64xf32>
// KERNEL:       te.reorder %[[V:.*]] {order = ["p", "c.outer", "e.outer", "e.inner", "c.inner"]}
// KERNEL:       te.unroll %[[V]] {axis = "e.outer"}
// KERNEL-NEXT:  te.unroll %[[V]] {axis = "e.inner"}
// KERNEL-NEXT:  te.vectorize %[[V]] {axis = "c.inner"}
// KERNEL-NEXT:  te.compute_root %[[ROWS]]
// KERNEL-NEXT:  te.compute_at %[[ROWS]], %[[V]] {axis = "p.c.outer.fused"}
// KERNEL-NEXT:  te.reorder %[[ROWS]] {order = ["p", "xi", "j", "c"]}
// KERNEL-NEXT:  te.unroll %[[ROWS]] {axis = "xi"}
// KERNEL-NEXT:  te.unroll %[[ROWS]] {axis = "j"}
// KERNEL-NEXT:  te.vectorize %[[ROWS]] {axis = "c"}
// KERNEL-LABEL: func.func private @nn_contrib_winograd_output_transform_0
// KERNEL:       %[[ROWS:.*]] = te.compute {stage = "T_winograd_output_rows", axes = ["i", "nu", "p", "k"]} : tensor<4x6x16x64xf32>
// KERNEL:       te.reorder %[[Y:.*]] {order = ["n", "y.outer", "x.outer", "k.outer", "y.inner", "x.inner", "k.inner"]}
// KERNEL:       te.unroll %[[Y]] {axis = "y.inner"}
// KERNEL-NEXT:  te.unroll %[[Y]] {axis = "x.inner"}
// KERNEL-NEXT:  te.vectorize %[[Y]] {axis = "k.inner"}
// KERNEL-NEXT:  te.compute_root %[[ROWS]]
// KERNEL-NEXT:  te.compute_at %[[ROWS]], %[[Y]] {axis = "n.y.outer.x.outer.k.outer.fused"}
// KERNEL-NEXT:  te.reorder %[[ROWS]] {order = ["p", "nu", "i", "k"]}
// KERNEL-NEXT:  te.unroll %[[ROWS]] {axis = "nu"}
// KERNEL-NEXT:  te.unroll %[[ROWS]] {axis = "i"}
// KERNEL-NEXT:  te.vectorize %[[ROWS]] {axis = "k"}
func.func @f4(%x: tensor<1x14x14x64xf32>) -> tensor<1x14x14x64xf32> {
  %w = graph.constant {value = dense<0.5> : tensor<3x3x64x64xf32>} : tensor<3x3x64x64xf32>
  %0 = graph.nn.conv2d %x, %w {padding = [1, 1, 1, 1], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x14x14x64xf32>, tensor<3x3x64x64xf32>) -> tensor<1x14x14x64xf32>
  func.return %0 : tensor<1x14x14x64xf32>
}

// -----

// At 5x5 the rule takes F(2x2, 3x3): F(4, 3)'s 2x2 tiles would compute 64 pixels for 25 with
// a weight 4x the direct one's.
// CHECK-LABEL: func.func @f2
// CHECK:       graph.nn.contrib_winograd_input_transform %x {tile_size = 2 : i64, padding = [1 : i64, 1 : i64, 1 : i64, 1 : i64]} : (tensor<1x5x5x64xf32>) -> tensor<16x9x64xf32>
// CHECK:       graph.nn.contrib_winograd_output_transform %{{.*}} {tile_size = 2 : i64, output_size = [5 : i64, 5 : i64]} : (tensor<16x9x64xf32>) -> tensor<1x5x5x64xf32>
func.func @f2(%x: tensor<1x5x5x64xf32>) -> tensor<1x5x5x64xf32> {
  %w = graph.constant {value = dense<0.5> : tensor<3x3x64x64xf32>} : tensor<3x3x64x64xf32>
  %0 = graph.nn.conv2d %x, %w {padding = [1, 1, 1, 1], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x5x5x64xf32>, tensor<3x3x64x64xf32>) -> tensor<1x5x5x64xf32>
  func.return %0 : tensor<1x5x5x64xf32>
}

// -----

// Left alone: stride 2, a 1x1 kernel, a weight that is an input, a grouped conv.
// CHECK-LABEL: func.func @kept
// CHECK-NOT:   winograd
// CHECK-COUNT-4: graph.nn.conv2d
// CHECK-NOT:   winograd
func.func @kept(%x: tensor<1x14x14x64xf32>, %win: tensor<3x3x64x64xf32>) -> (tensor<1x7x7x64xf32>, tensor<1x14x14x64xf32>, tensor<1x14x14x64xf32>, tensor<1x14x14x64xf32>) {
  %w = graph.constant {value = dense<0.5> : tensor<3x3x64x64xf32>} : tensor<3x3x64x64xf32>
  %w1 = graph.constant {value = dense<0.5> : tensor<1x1x64x64xf32>} : tensor<1x1x64x64xf32>
  %wg = graph.constant {value = dense<0.5> : tensor<3x3x32x64xf32>} : tensor<3x3x32x64xf32>
  %0 = graph.nn.conv2d %x, %w {strides = [2, 2], padding = [1, 1, 1, 1], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x14x14x64xf32>, tensor<3x3x64x64xf32>) -> tensor<1x7x7x64xf32>
  %1 = graph.nn.conv2d %x, %w1 {data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x14x14x64xf32>, tensor<1x1x64x64xf32>) -> tensor<1x14x14x64xf32>
  %2 = graph.nn.conv2d %x, %win {padding = [1, 1, 1, 1], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x14x14x64xf32>, tensor<3x3x64x64xf32>) -> tensor<1x14x14x64xf32>
  %3 = graph.nn.conv2d %x, %wg {padding = [1, 1, 1, 1], groups = 2, data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x14x14x64xf32>, tensor<3x3x32x64xf32>) -> tensor<1x14x14x64xf32>
  func.return %0, %1, %2, %3 : tensor<1x7x7x64xf32>, tensor<1x14x14x64xf32>, tensor<1x14x14x64xf32>, tensor<1x14x14x64xf32>
}
