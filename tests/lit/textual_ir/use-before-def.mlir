// RUN: not lathe-opt %s 2>&1 | filecheck %s
// A value used before its definition is a verification error at the op that uses it.

func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = graph.add %1, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %1 = graph.negative %x : (tensor<4xf32>) -> tensor<4xf32>
  func.return %0 : tensor<4xf32>
}
// CHECK: use-before-def.mlir:5:3: error: 'graph.add': operand #0 ({{.*}}) is used before it is defined
// CHECK-NEXT: %0 = graph.add %1, %x
// CHECK-NEXT: ^
