// RUN: not lathe-opt %s -p lower-graph-to-te 2>&1 | filecheck %s

// lower-graph-to-te lowers kernels only; on a module without any it would do
// nothing, so it says what to run first.
// CHECK:      error: lower-graph-to-te: no kernels to lower ('nn.relu' in @main is not in one)
// CHECK-NEXT: run outline-kernels or fuse-ops first
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = graph.nn.relu %x : (tensor<4xf32>) -> tensor<4xf32>
  func.return %0 : tensor<4xf32>
}
