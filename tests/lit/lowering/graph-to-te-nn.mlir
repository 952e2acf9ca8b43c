// RUN: lathe-opt %s --split-input-file -p lower-graph-to-te | filecheck %s

// conv2d: a padded copy of the data (a clamped read and a select per element),
// then a sum over (rc, ry, rx) that reads it without bounds checks. The sum is
// marked as the anchor of nn.conv2d's schedule template, the copy by its role.
// CHECK-LABEL: func.func private @conv
// CHECK:      %0 = te.compute {stage = "T_pad_data", axes = ["ax0", "ax1", "ax2", "ax3"], role = "pad"} : tensor<1x3x7x7xf32>
// CHECK:        arith.cmpi sge
// CHECK:        arith.maxsi
// CHECK:        arith.minsi
// CHECK:        %[[X:.*]] = te.read %x[
// CHECK:        arith.select %{{.*}}, %[[X]], %{{.*}} : f32
// CHECK:      te.compute {stage = "T_conv2d", axes = ["n", "f", "y", "x", "rc", "ry", "rx"], reduce_extents = [3 : i64, 3 : i64, 3 : i64], combiner = "sum", anchor = "nn.conv2d"} : tensor<1x8x5x5xf32>
// CHECK:        te.read %0[
// CHECK:        te.read %w[%f, %rc, %ry, %rx] : tensor<8x3x3x3xf32> -> f32
func.func private @conv(%x: tensor<1x3x5x5xf32>, %w: tensor<8x3x3x3xf32>) -> tensor<1x8x5x5xf32> attributes {lathe.kernel} {
  %0 = graph.nn.conv2d %x, %w {padding = [1, 1]} : (tensor<1x3x5x5xf32>, tensor<8x3x3x3xf32>) -> tensor<1x8x5x5xf32>
  func.return %0 : tensor<1x8x5x5xf32>
}

// -----
// softmax is four stages: max, exp(x - max), its sum, and the normalisation, which
// reads the exp stage (exp is computed once per element, not once more in the output)
// and multiplies it by 1 / sum.
// CHECK-LABEL: func.func private @softmax
// CHECK:      %0 = te.compute {stage = "T_softmax_maxelem", {{.*}} combiner = "max"} : tensor<2x1xf32>
// CHECK:      %[[E:.*]] = te.compute {stage = "T_softmax_exp", axes = ["ax0", "ax1"]} : tensor<2x5xf32>
// CHECK:        math.exp
// CHECK:      %[[S:.*]] = te.compute {stage = "T_softmax_expsum", {{.*}} combiner = "sum"} : tensor<2x1xf32>
// CHECK-NOT:    math.exp
// CHECK:        te.read %[[E]]
// CHECK:      %{{.*}} = te.compute {stage = "T_softmax", axes = ["ax0", "ax1"]} : tensor<2x5xf32>
// CHECK-NOT:    math.exp
// CHECK:        te.read %[[E]]
// CHECK:        te.read %[[S]]
// CHECK:        arith.divf
// CHECK:        arith.mulf
func.func private @softmax(%x: tensor<2x5xf32>) -> tensor<2x5xf32> attributes {lathe.kernel} {
  %0 = graph.nn.softmax %x {axis = 1} : (tensor<2x5xf32>) -> tensor<2x5xf32>
  func.return %0 : tensor<2x5xf32>
}

// -----
// reshape linearizes the output index and splits it by the input shape.
// CHECK-LABEL: func.func private @reshape
// CHECK:      te.compute {stage = "T_reshape", axes = ["ax0"]} : tensor<6xf32>
// CHECK:        arith.remsi
// CHECK:        arith.floordivsi
// CHECK:        te.read %x[
func.func private @reshape(%x: tensor<2x3xf32>) -> tensor<6xf32> attributes {lathe.kernel} {
  %0 = graph.reshape %x {newshape = [-1]} : (tensor<2x3xf32>) -> tensor<6xf32>
  func.return %0 : tensor<6xf32>
}
