// RUN: lathe-opt %s --split-input-file -p 'alter-op-layout{vector_lanes=4},fold-constant' | filecheck %s

// A 2x2 stride-2 transposed convolution with a constant weight: its four phases each read one
// pixel of x, so it becomes one 1x1 stride-1 conv to 4 * 3 channels, phase-major (channel
// (rh * 2 + rw) * 3 + o holds w[:, o, rh, rw]), then depth-to-space (reshape, transpose,
// reshape) in NHWC; the crop of padding 0 is the whole tensor and canonicalizes away.
// CHECK-LABEL: func.func @main
// CHECK:      %[[X:.*]] = graph.transpose %x {axes = [0 : i64, 2 : i64, 3 : i64, 1 : i64]}
// CHECK:      %[[W:.*]] = graph.constant {value = dense<{{\[\[\[\[}}0.000000e+00, 4.000000e+00, 8.000000e+00, 1.000000e+00, {{.*}}> : tensor<1x1x2x12xf32>}
// CHECK-NEXT: %[[C:.*]] = graph.nn.conv2d %[[X]], %[[W]] {channels = 12 : i64, kernel_size = [1 : i64, 1 : i64], data_layout = "NHWC", kernel_layout = "HWIO"}
// CHECK-NEXT: %[[S:.*]] = graph.reshape %[[C]] {newshape = [1 : i64, 4 : i64, 4 : i64, 2 : i64, 2 : i64, 3 : i64]}
// CHECK-NEXT: %[[I:.*]] = graph.transpose %[[S]] {axes = [0 : i64, 1 : i64, 3 : i64, 2 : i64, 4 : i64, 5 : i64]}
// CHECK-NEXT: %[[J:.*]] = graph.reshape %[[I]] {newshape = [1 : i64, 8 : i64, 8 : i64, 3 : i64]}
// CHECK-NEXT: graph.transpose %[[J]] {axes = [0 : i64, 3 : i64, 1 : i64, 2 : i64]}
// CHECK-NOT:  conv2d_transpose
func.func @main(%x: tensor<1x2x4x4xf32>) -> tensor<1x3x8x8xf32> {
  %w = graph.constant {value = dense<[[[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]], [[8.0, 9.0], [10.0, 11.0]]], [[[12.0, 13.0], [14.0, 15.0]], [[16.0, 17.0], [18.0, 19.0]], [[20.0, 21.0], [22.0, 23.0]]]]> : tensor<2x3x2x2xf32>} : tensor<2x3x2x2xf32>
  %0 = graph.nn.conv2d_transpose %x, %w {strides = [2 : i64, 2 : i64], channels = 3 : i64, kernel_size = [2 : i64, 2 : i64]} : (tensor<1x2x4x4xf32>, tensor<2x3x2x2xf32>) -> tensor<1x3x8x8xf32>
  func.return %0 : tensor<1x3x8x8xf32>
}

// -----

// Groups 2: kept (its phases would be a grouped conv with phase-major channels).
// CHECK-LABEL: func.func @grouped
// CHECK:       graph.nn.conv2d_transpose
func.func @grouped(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x8x8xf32> {
  %w = graph.constant {value = dense<1.0> : tensor<2x1x2x2xf32>} : tensor<2x1x2x2xf32>
  %0 = graph.nn.conv2d_transpose %x, %w {strides = [2 : i64, 2 : i64], groups = 2 : i64, channels = 2 : i64, kernel_size = [2 : i64, 2 : i64]} : (tensor<1x2x4x4xf32>, tensor<2x1x2x2xf32>) -> tensor<1x2x8x8xf32>
  func.return %0 : tensor<1x2x8x8xf32>
}
