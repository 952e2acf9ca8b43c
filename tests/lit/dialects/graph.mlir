// RUN: lathe-opt %s --split-input-file | filecheck %s
// RUN: lathe-opt %s --split-input-file --print-op-generic | lathe-opt --split-input-file | filecheck %s

// A property equal to its default is not printed (bias_add's axis, matmul's transpose_a).
// CHECK-LABEL: func.func @ops
// CHECK:   %0 = graph.nn.dense %x, %w {units = 8 : i64} : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x8xf32>
// CHECK:   %1 = graph.nn.bias_add %0, %b : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
// CHECK:   %2 = graph.nn.relu %1 : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK:   %3 = graph.constant {value = dense<2.000000e+00> : tensor<f32>} : tensor<f32>
// CHECK:   %4 = graph.multiply %2, %3 : (tensor<2x8xf32>, tensor<f32>) -> tensor<2x8xf32>
// CHECK:   %5 = graph.nn.matmul %4, %w : (tensor<2x8xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
// CHECK:   %6 = graph.add %5, %x : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
func.func @ops(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>, %b: tensor<8xf32>) -> tensor<2x4xf32> {
  %0 = graph.nn.dense %x, %w {units = 8 : i64} : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x8xf32>
  %1 = graph.nn.bias_add %0, %b {axis = 1 : i64} : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %2 = graph.nn.relu %1 : (tensor<2x8xf32>) -> tensor<2x8xf32>
  %3 = graph.constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %4 = graph.multiply %2, %3 : (tensor<2x8xf32>, tensor<f32>) -> tensor<2x8xf32>
  %5 = graph.nn.matmul %4, %w {transpose_a = false} : (tensor<2x8xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
  %6 = graph.add %5, %x : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  func.return %6 : tensor<2x4xf32>
}

// -----
// CHECK-LABEL: func.func @tuples
// CHECK: %t = graph.tuple %a, %b : (tensor<3xf32>, tensor<2xi64>) -> tuple<tensor<3xf32>, tensor<2xi64>>
// CHECK: %0 = graph.tuple_get_item %t {index = 1 : i64} : (tuple<tensor<3xf32>, tensor<2xi64>>) -> tensor<2xi64>
func.func @tuples(%a: tensor<3xf32>, %b: tensor<2xi64>) -> tensor<2xi64> {
  %t = graph.tuple %a, %b : (tensor<3xf32>, tensor<2xi64>) -> tuple<tensor<3xf32>, tensor<2xi64>>
  %0 = graph.tuple_get_item %t {index = 1 : i64} : (tuple<tensor<3xf32>, tensor<2xi64>>) -> tensor<2xi64>
  func.return %0 : tensor<2xi64>
}

// -----
// A property that differs from its default is printed; a float attribute is an f64.
// CHECK-LABEL: func.func @non_defaults
// CHECK: graph.nn.matmul %a, %b {transpose_b = true} : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>
// CHECK: graph.nn.leaky_relu %0 {alpha = 2.000000e-01 : f64} : (tensor<2x4xf32>) -> tensor<2x4xf32>
func.func @non_defaults(%a: tensor<2x3xf32>, %b: tensor<4x3xf32>) -> tensor<2x4xf32> {
  %0 = graph.nn.matmul %a, %b {transpose_a = false, transpose_b = true} : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>
  %1 = graph.nn.leaky_relu %0 {alpha = 0.2 : f64} : (tensor<2x4xf32>) -> tensor<2x4xf32>
  func.return %1 : tensor<2x4xf32>
}

// -----
// arange has no operands; topk gives the indices alone with ret_type = "indices".
// CHECK-LABEL: func.func @ordering
// CHECK: %r = graph.arange {stop = 4.000000e+00 : f64, step = 2.000000e+00 : f64, dtype = "int64"} : tensor<2xi64>
// CHECK: %0 = graph.topk %x {k = 2 : i64, ret_type = "indices", dtype = "int64"} : (tensor<3x5xf32>) -> tensor<3x2xi64>
// CHECK: %1 = graph.topk %x {k = 2 : i64} : (tensor<3x5xf32>) -> tuple<tensor<3x2xf32>, tensor<3x2xi32>>
func.func @ordering(%x: tensor<3x5xf32>) -> tensor<3x2xi64> {
  %r = graph.arange {stop = 4.0 : f64, step = 2.0 : f64, dtype = "int64"} : tensor<2xi64>
  %0 = graph.topk %x {k = 2 : i64, ret_type = "indices", dtype = "int64"} : (tensor<3x5xf32>) -> tensor<3x2xi64>
  %1 = graph.topk %x {k = 2 : i64} : (tensor<3x5xf32>) -> tuple<tensor<3x2xf32>, tensor<3x2xi32>>
  func.return %0 : tensor<3x2xi64>
}

// -----

// Winograd's transforms (winograd-conv makes them): tile_size 4 is the default and not printed.
// CHECK-LABEL: func.func @winograd
// CHECK:   %0 = graph.nn.contrib_winograd_input_transform %x {padding = [1 : i64, 1 : i64, 1 : i64, 1 : i64]} : (tensor<1x6x7x16xf32>) -> tensor<36x4x16xf32>
// CHECK:   %1 = graph.nn.contrib_winograd_output_transform %0 {output_size = [6 : i64, 7 : i64]} : (tensor<36x4x16xf32>) -> tensor<1x6x7x16xf32>
// CHECK:   %2 = graph.nn.contrib_winograd_input_transform %x {tile_size = 2 : i64} : (tensor<1x6x7x16xf32>) -> tensor<16x6x16xf32>
// CHECK:   %3 = graph.nn.contrib_winograd_weight_transform %w : (tensor<3x3x16x8xf32>) -> tensor<36x16x8xf32>
func.func @winograd(%x: tensor<1x6x7x16xf32>, %w: tensor<3x3x16x8xf32>) -> (tensor<1x6x7x16xf32>, tensor<16x6x16xf32>, tensor<36x16x8xf32>) {
  %0 = graph.nn.contrib_winograd_input_transform %x {padding = [1, 1, 1, 1]} : (tensor<1x6x7x16xf32>) -> tensor<36x4x16xf32>
  %1 = graph.nn.contrib_winograd_output_transform %0 {tile_size = 4, output_size = [6, 7]} : (tensor<36x4x16xf32>) -> tensor<1x6x7x16xf32>
  %2 = graph.nn.contrib_winograd_input_transform %x {tile_size = 2} : (tensor<1x6x7x16xf32>) -> tensor<16x6x16xf32>
  %3 = graph.nn.contrib_winograd_weight_transform %w : (tensor<3x3x16x8xf32>) -> tensor<36x16x8xf32>
  func.return %1, %2, %3 : tensor<1x6x7x16xf32>, tensor<16x6x16xf32>, tensor<36x16x8xf32>
}
