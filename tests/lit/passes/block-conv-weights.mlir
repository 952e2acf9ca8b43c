// RUN: lathe-opt %s --split-input-file -p block-conv-weights | filecheck %s
// RUN: lathe-opt %s --split-input-file -p 'block-conv-weights{vector_lanes=8}' | filecheck %s --check-prefix=EIGHT
// RUN: lathe-opt %s --split-input-file -p 'block-conv-weights{vector_lanes=1}' | filecheck %s --check-prefix=ONE
// RUN: lathe-opt %s --split-input-file -p block-conv-weights,fold-constant,outline-kernels,lower-graph-to-te,apply-default-schedule | filecheck %s --check-prefix=KERNEL

// A constant HWIO weight becomes blocks of b filters, [F/b, KH, KW, C, b] (OHWI{b}o): b is the
// template's default block_f (two vectors: 32 at 16 lanes, 16 at 8), a reshape and a transpose
// that fold-constant evaluates once. A one-lane target keeps HWIO.
// CHECK-LABEL: func.func @deep
// CHECK:      %[[R:.*]] = graph.reshape %w {newshape = [3 : i64, 3 : i64, 64 : i64, 16 : i64, 32 : i64]}
// CHECK-NEXT: %[[T:.*]] = graph.transpose %[[R]] {axes = [3 : i64, 0 : i64, 1 : i64, 2 : i64, 4 : i64]} : (tensor<3x3x64x16x32xf32>) -> tensor<16x3x3x64x32xf32>
// CHECK-NEXT: graph.nn.conv2d %x, %[[T]] {{.*}}kernel_layout = "OHWI32o"{{.*}} : (tensor<1x7x7x64xf32>, tensor<16x3x3x64x32xf32>) -> tensor<1x7x7x512xf32>
// EIGHT-LABEL: func.func @deep
// EIGHT:       kernel_layout = "OHWI16o"{{.*}} : (tensor<1x7x7x64xf32>, tensor<32x3x3x64x16xf32>)
// ONE-LABEL:   func.func @deep
// ONE-NOT:     graph.reshape
// ONE:         kernel_layout = "HWIO"
// The kernel reads the blocked weight at [f / 32, ry, rx, rc, f % 32], weight-stationary over
// the blocks, and packs nothing per run (no cache_read: the HWIO weight's fyx_pack had one).
// KERNEL-LABEL: func.func private @{{.*}}(%{{.*}}: tensor<1x7x7x64xf32>, %{{.*}}: tensor<16x3x3x64x32xf32>)
// KERNEL:       %[[BLK:.*]] = arith.floordivsi %f,
// KERNEL:       %[[LANE:.*]] = arith.remsi %f,
// KERNEL:       te.read %{{.*}}[%[[BLK]], %ry, %rx, %rc, %[[LANE]]] : tensor<16x3x3x64x32xf32> -> f32
// KERNEL-NOT:   te.cache_read
// KERNEL:       te.split %{{.*}} {axis = "f", factor = 32 : i64
// KERNEL:       te.parallel %{{.*}} {axis = "f.outer"}
// KERNEL-NOT:   te.cache_read
// KERNEL:       func.return
func.func @deep(%x: tensor<1x7x7x64xf32>) -> tensor<1x7x7x512xf32> {
  %w = graph.constant {value = dense<0.5> : tensor<3x3x64x512xf32>} : tensor<3x3x64x512xf32>
  %0 = graph.nn.conv2d %x, %w {padding = [1, 1, 1, 1], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x7x7x64xf32>, tensor<3x3x64x512xf32>) -> tensor<1x7x7x512xf32>
  func.return %0 : tensor<1x7x7x512xf32>
}

// -----

// Left alone: a weight that is an input (not a constant), one block's worth of filters (HWIO
// already is its contiguous layout), and a grouped conv.
// CHECK-LABEL: func.func @kept
// CHECK-NOT:   graph.reshape
// CHECK-NOT:   OHWI
// CHECK:       func.return
func.func @kept(%x: tensor<1x8x8x32xf32>, %w: tensor<3x3x32x64xf32>) -> (tensor<1x8x8x64xf32>, tensor<1x8x8x32xf32>, tensor<1x8x8x64xf32>) {
  %0 = graph.nn.conv2d %x, %w {padding = [1, 1, 1, 1], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x8x8x32xf32>, tensor<3x3x32x64xf32>) -> tensor<1x8x8x64xf32>
  %c = graph.constant {value = dense<0.5> : tensor<1x1x32x32xf32>} : tensor<1x1x32x32xf32>
  %1 = graph.nn.conv2d %x, %c {data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x8x8x32xf32>, tensor<1x1x32x32xf32>) -> tensor<1x8x8x32xf32>
  %g = graph.constant {value = dense<0.5> : tensor<1x1x16x64xf32>} : tensor<1x1x16x64xf32>
  %2 = graph.nn.conv2d %x, %g {groups = 2, data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x8x8x32xf32>, tensor<1x1x16x64xf32>) -> tensor<1x8x8x64xf32>
  func.return %0, %1, %2 : tensor<1x8x8x64xf32>, tensor<1x8x8x32xf32>, tensor<1x8x8x64xf32>
}
