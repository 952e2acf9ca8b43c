// RUN: lathe-opt %s --split-input-file -p fold-constant | filecheck %s
// RUN: lathe-opt %s --split-input-file -p 'fold-constant{max_elements=2}' | filecheck %s --check-prefix=SMALL

// Subgraphs of constants are evaluated: (2 + 3) * 4 = 20, then the reshape. Under a bound of
// 2 elements they fold too: no value is larger than its largest operand (4 elements).
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[C:.*]] = graph.constant {value = dense<2.000000e+01> : tensor<2x2xf32>} : tensor<2x2xf32>
// CHECK-NEXT:    %{{.*}} = graph.add %x, %[[C]]
// SMALL-LABEL: func.func @main
// SMALL-NEXT:    %[[C:.*]] = graph.constant {value = dense<2.000000e+01> : tensor<2x2xf32>} : tensor<2x2xf32>
// SMALL-NEXT:    %{{.*}} = graph.add %x, %[[C]]
func.func @main(%x: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %a = graph.constant {value = dense<2.0> : tensor<4xf32>} : tensor<4xf32>
  %b = graph.constant {value = dense<3.0> : tensor<f32>} : tensor<f32>
  %c = graph.add %a, %b : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %d = graph.constant {value = dense<4.0> : tensor<f32>} : tensor<f32>
  %e = graph.multiply %c, %d : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %f = graph.reshape %e {newshape = [2, 2]} : (tensor<4xf32>) -> tensor<2x2xf32>
  %g = graph.add %x, %f : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  func.return %g : tensor<2x2xf32>
}

// -----

// A value that grows past the bound from smaller operands stays an op (a broadcast of a scalar).
// CHECK-LABEL: func.func @grows
// CHECK-NEXT:    %[[C:.*]] = graph.constant {value = dense<2.000000e+00> : tensor<4xf32>} : tensor<4xf32>
// CHECK-NEXT:    graph.add %x, %[[C]]
// SMALL-LABEL: func.func @grows
// SMALL:         graph.broadcast_to
func.func @grows(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = graph.constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %1 = graph.broadcast_to %0 {shape = [4 : i64]} : (tensor<f32>) -> tensor<4xf32>
  %2 = graph.add %x, %1 : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %2 : tensor<4xf32>
}

// -----

// A layout transform of a constant larger than the bound folds: it is no larger than its operand.
// SMALL-LABEL: func.func @transposed
// SMALL-NEXT:    %[[C:.*]] = graph.constant {value = dense<{{\[\[}}1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf32>}
// SMALL-NEXT:    graph.add %x, %[[C]]
func.func @transposed(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = graph.constant {value = dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>} : tensor<3x2xf32>
  %1 = graph.transpose %0 {axes = [1 : i64, 0 : i64]} : (tensor<3x2xf32>) -> tensor<2x3xf32>
  %2 = graph.add %x, %1 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %2 : tensor<2x3xf32>
}
