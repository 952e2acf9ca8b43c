// RUN: lathe-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @wrong_result(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>) -> tensor<2x9xf32> {
  %0 = graph.nn.dense %x, %w : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x9xf32>
  func.return %0 : tensor<2x9xf32>
}
// CHECK: nn.dense: result type Tensor[(2, 9), float32] does not match the inferred type Tensor[(2, 8), float32]

// -----
func.func @mismatch(%x: tensor<2x4xf32>, %y: tensor<3xf32>) -> tensor<2x4xf32> {
  %0 = graph.add %x, %y : (tensor<2x4xf32>, tensor<3xf32>) -> tensor<2x4xf32>
  func.return %0 : tensor<2x4xf32>
}
// CHECK: add: shapes Tensor[(2, 4), float32] and Tensor[(3), float32] cannot be broadcast (dimension 4 vs 3)

// -----
func.func @dtype(%x: tensor<4xf32>, %y: tensor<4xi32>) -> tensor<4xf32> {
  %0 = graph.multiply %x, %y : (tensor<4xf32>, tensor<4xi32>) -> tensor<4xf32>
  func.return %0 : tensor<4xf32>
}
// CHECK: multiply: operand dtypes differ: Tensor[(4), float32] vs Tensor[(4), int32]

// -----
// Properties are typed: a flag is an i1, whatever integer it is spelled as.
func.func @flag_kind(%x: tensor<2x4xf32>) -> tensor<2xf32> {
  %0 = graph.sum %x {axis = 1 : i64, keepdims = 1 : i64} : (tensor<2x4xf32>) -> tensor<2xf32>
  func.return %0 : tensor<2xf32>
}
// CHECK: graph.sum: Expected attribute i1 but got i64

// -----
func.func @string_kind(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %0 = "graph.nn.max_pool2d"(%x) <{layout = 4 : i64}> : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %0 : tensor<1x2x4x4xf32>
}
// CHECK: 'graph.nn.max_pool2d' does not verify: Unexpected attribute 4 : i64

// -----
func.func @while_rank(%a: tensor<3xf32>) -> tensor<3xf32> {
  %0:1 = "graph.while"(%a) ({
  ^bb0(%x: tensor<3xf32>):
    %1 = graph.constant {value = dense<false> : tensor<i1>} : tensor<i1>
    "graph.yield"(%1) : (tensor<i1>) -> ()
  }, {
  ^bb0(%x: tensor<3xf32>):
    %2 = graph.reshape %x {newshape = [1 : i64, 3 : i64]} : (tensor<3xf32>) -> tensor<1x3xf32>
    "graph.yield"(%2) : (tensor<1x3xf32>) -> ()
  }) : (tensor<3xf32>) -> tensor<3xf32>
  func.return %0#0 : tensor<3xf32>
}
// CHECK: while: the body gives Tensor[(1, 3), float32] for a value carried as Tensor[(3), float32]
