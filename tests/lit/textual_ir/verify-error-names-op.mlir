// RUN: not lathe-opt %s 2>&1 | filecheck %s
// A verification error names the op and points at it.

func.func @wrong(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>) -> tensor<2x9xf32> {
  %0 = graph.nn.dense %x, %w : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x9xf32>
  func.return %0 : tensor<2x9xf32>
}
// CHECK: verify-error-names-op.mlir:5:3: error: 'graph.nn.dense' does not verify: nn.dense: result type Tensor[(2, 9), float32] does not match the inferred type Tensor[(2, 8), float32]
