// RUN: lathe-opt %s --split-input-file -p fold-constant | filecheck %s
// RUN: lathe-opt %s --split-input-file -p 'fold-constant{max_elements=2}' | filecheck %s --check-prefix=SMALL

// Subgraphs of constants are evaluated: (2 + 3) * 4 = 20, then the reshape.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[C:.*]] = graph.constant {value = dense<2.000000e+01> : tensor<2x2xf32>} : tensor<2x2xf32>
// CHECK-NEXT:    %{{.*}} = graph.add %x, %[[C]]
// SMALL-LABEL: func.func @main
// SMALL:         graph.multiply
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
