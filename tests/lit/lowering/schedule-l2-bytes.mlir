// RUN: lathe-opt %s -p 'lower-graph-to-te,apply-default-schedule{vector_lanes=16 l2_bytes=2097152}' | filecheck %s --check-prefix=TWO
// RUN: lathe-opt %s -p 'lower-graph-to-te,apply-default-schedule' | filecheck %s --check-prefix=ONE
// RUN: lathe-opt %s -p 'lower-graph-to-te,apply-default-schedule{l2_bytes=1048576}' | filecheck %s --check-prefix=ONE
// RUN: not lathe-opt %s -p 'lower-graph-to-te,apply-default-schedule{l2_bytes=0}' 2>&1 | filecheck %s --check-prefix=ZERO

// The dense_pack default blocks for the L2 it is given (the target's, through the backend's
// graph pass options). 128x768x3072: with 2 MiB, 64 rows of x (12 KiB each) and a 384 KiB
// weight panel fit 5/8 of L2 over all of k, so a block is 8 register tiles and k is whole;
// the 1 MiB fallback fits no 64-row block over all of k, so it keeps 128 rows and splits k
// into k-blocks of 1024 (computed per cache block, outside the register tiles).
// TWO-LABEL: func.func private @dense
// TWO:       te.split %{{.*}} {axis = "i0.outer", factor = 8 : i64
// TWO-NOT:   te.split %{{.*}} {axis = "k"
// TWO:       func.return
// ONE-LABEL: func.func private @dense
// ONE:       te.split %{{.*}} {axis = "i0.outer", factor = 16 : i64
// ONE:       te.split %{{.*}} {axis = "k", factor = 1024 : i64
// ONE:       func.return
// ZERO: error: apply-default-schedule: l2_bytes must be positive, got 0
func.func @main(%x: tensor<128x3072xf32>, %w: tensor<24x3072x32xf32>) -> tensor<128x768xf32> {
  %0 = func.call @dense(%x, %w) : (tensor<128x3072xf32>, tensor<24x3072x32xf32>) -> tensor<128x768xf32>
  func.return %0 : tensor<128x768xf32>
}
func.func private @dense(%0: tensor<128x3072xf32>, %1: tensor<24x3072x32xf32>) -> tensor<128x768xf32> attributes {lathe.kernel} {
  %2 = graph.nn.contrib_dense_pack %0, %1 : (tensor<128x3072xf32>, tensor<24x3072x32xf32>) -> tensor<128x768xf32>
  func.return %2 : tensor<128x768xf32>
}
