// RUN: lathe-opt %s -p block-conv-weights,fold-constant,fuse-ops,lower-graph-to-te,apply-default-schedule | filecheck %s
// RUN: lathe-opt %s -p block-conv-weights,fold-constant,fuse-ops,lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops | filecheck %s --check-prefix=LOOP

// A squeeze-excitation's fc2 fused with its scale: the kernel's output is the scaled map, so
// no template claims it and its 1x1 conv is a per-stage reduction. block-conv-weights laid the
// constant weight out in blocks of 32 filters ([F/32, 1, 1, C, 32]); the conv's reads walk the
// output channels block by block, so its vector is a whole block (the block and lane indices
// fold to the loop variables: contiguous rows of the block, no division), the reduce axes
// outside it. (It was the scalar contraction schedule: channels in fours, unrolled.)
// CHECK-LABEL: func.func private @{{.*}}(%{{.*}}: tensor<1x1x1x16xf32>, %{{.*}}: tensor<2x1x1x16x32xf32>
// CHECK:      te.split %[[CONV:.*]] {axis = "f", factor = 32 : i64
// CHECK-NEXT: te.fuse %[[CONV]] {fuse_axes = ["n", "y", "x", "f.outer"]
// CHECK-NEXT: te.reorder %[[CONV]] {order = ["n.y.x.f.outer.fused", "rc", "ry", "rx", "f.inner"]}
// CHECK-NEXT: te.vectorize %[[CONV]] {axis = "f.inner"}
// CHECK:      func.return

// LOOP-LABEL: func.func private @fused_nn_conv2d_nn_bias_add_sigmoid_multiply
// LOOP-SAME:  (%{{.*}}: memref<1x1x1x16xf32>, %[[W:[0-9]+]]: memref<2x1x1x16x32xf32>
// LOOP:       scf.for %[[B:.*]] = %{{.*}} to %{{.*}} step
// LOOP:         scf.for %rc =
// LOOP-NEXT:      scf.for %[[L:.*]] = %{{.*}} to %{{.*}} step
// LOOP-NOT:         arith.remsi
// LOOP-NOT:         arith.floordivsi
// LOOP:             memref.load %[[W]][%[[B]], %{{.*}}, %{{.*}}, %rc, %[[L]]]
// LOOP:           } {loop.annotation = #loop.annotation<vectorize = 32>}
// The gate (bias, sigmoid) once per channel; then the scale as vector rows: the pixels
// parallel, a pixel's 64 channels one vector row, the gate read at the row's own index.
// LOOP:       math.exp
// LOOP:       } {loop.annotation = #loop.annotation<vectorize = 16>}
// LOOP:       scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// LOOP-NEXT:    scf.for %[[C:.*]] = %{{.*}} to %{{.*}} step
// LOOP-NOT:       scf.for
// LOOP:           memref.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %[[C]]] : memref<1x1x1x64xf32>
// LOOP:         } {loop.annotation = #loop.annotation<vectorize = 64>}
// LOOP-NEXT:  } {loop.annotation = #loop.annotation<parallel>}
func.func @main(%x: tensor<1x16x16x64xf32>) -> tensor<1x16x16x64xf32> {
  %w1 = graph.constant {value = dense<0.25> : tensor<1x1x64x16xf32>} : tensor<1x1x64x16xf32>
  %b1 = graph.constant {value = dense<0.5> : tensor<16xf32>} : tensor<16xf32>
  %w2 = graph.constant {value = dense<0.125> : tensor<1x1x16x64xf32>} : tensor<1x1x16x64xf32>
  %b2 = graph.constant {value = dense<-0.5> : tensor<64xf32>} : tensor<64xf32>
  %0 = graph.nn.global_avg_pool2d %x {layout = "NHWC"} : (tensor<1x16x16x64xf32>) -> tensor<1x1x1x64xf32>
  %1 = graph.nn.conv2d %0, %w1 {kernel_size = [1 : i64, 1 : i64], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x1x1x64xf32>, tensor<1x1x64x16xf32>) -> tensor<1x1x1x16xf32>
  %2 = graph.nn.bias_add %1, %b1 {axis = 3 : i64} : (tensor<1x1x1x16xf32>, tensor<16xf32>) -> tensor<1x1x1x16xf32>
  %3 = graph.nn.relu %2 : (tensor<1x1x1x16xf32>) -> tensor<1x1x1x16xf32>
  %4 = graph.nn.conv2d %3, %w2 {kernel_size = [1 : i64, 1 : i64], data_layout = "NHWC", kernel_layout = "HWIO"} : (tensor<1x1x1x16xf32>, tensor<1x1x16x64xf32>) -> tensor<1x1x1x64xf32>
  %5 = graph.nn.bias_add %4, %b2 {axis = 3 : i64} : (tensor<1x1x1x64xf32>, tensor<64xf32>) -> tensor<1x1x1x64xf32>
  %6 = graph.sigmoid %5 : (tensor<1x1x1x64xf32>) -> tensor<1x1x1x64xf32>
  %7 = graph.multiply %x, %6 : (tensor<1x16x16x64xf32>, tensor<1x1x1x64xf32>) -> tensor<1x16x16x64xf32>
  func.return %7 : tensor<1x16x16x64xf32>
}
