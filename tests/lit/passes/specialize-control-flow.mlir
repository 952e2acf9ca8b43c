// RUN: lathe-opt %s --split-input-file -p specialize-control-flow --emit=mlir | filecheck %s

// Shapes known at compile time: shape_of of a static tensor, the index arithmetic on it and a
// graph.dyn reshape to the shape it gives fold to a static reshape, and the ? types after it
// (and the function's) become static.
// CHECK-LABEL: func.func @shapes(%x: tensor<2x3x4xf32>) -> tensor<2x12xf32> {
// CHECK-NEXT:    %{{.*}} = graph.reshape %x {newshape = [2 : i64, -1 : i64]} : (tensor<2x3x4xf32>) -> tensor<2x12xf32>
// CHECK-NEXT:    %{{.*}} = graph.nn.relu %{{.*}} : (tensor<2x12xf32>) -> tensor<2x12xf32>
// CHECK-NEXT:    func.return
func.func @shapes(%x: tensor<2x3x4xf32>) -> tensor<?x?xf32> {
  %s = "graph.shape_of"(%x) : (tensor<2x3x4xf32>) -> tensor<3xi64>
  %i = graph.constant {value = dense<[0]> : tensor<1xi64>} : tensor<1xi64>
  %b = graph.take %s, %i {axis = 0 : i64} : (tensor<3xi64>, tensor<1xi64>) -> tensor<1xi64>
  %m = graph.constant {value = dense<[-1]> : tensor<1xi64>} : tensor<1xi64>
  %t = graph.tuple %b, %m : (tensor<1xi64>, tensor<1xi64>) -> tuple<tensor<1xi64>, tensor<1xi64>>
  %target = graph.concatenate %t : (tuple<tensor<1xi64>, tensor<1xi64>>) -> tensor<2xi64>
  %y = "graph.dyn"(%x, %target) <{op = "reshape", attrs = {}, bind = ["newshape"], forms = ["list"]}> : (tensor<2x3x4xf32>, tensor<2xi64>) -> tensor<?x?xf32>
  %z = graph.nn.relu %y : (tensor<?x?xf32>) -> tensor<?x?xf32>
  func.return %z : tensor<?x?xf32>
}

// -----
// What is known only at run time stays: a condition that is an input, a ? input's shape_of,
// and a graph.dyn reading it.
// CHECK-LABEL: func.func @dynamic
// CHECK:         "graph.shape_of"(%x)
// CHECK:         "graph.dyn"
// CHECK:         "graph.if"(%c)
func.func @dynamic(%x: tensor<?x4xf32>, %c: tensor<i1>) -> tensor<?xf32> {
  %s = "graph.shape_of"(%x) : (tensor<?x4xf32>) -> tensor<2xi64>
  %r = graph.prod %s : (tensor<2xi64>) -> tensor<i64>
  %n = graph.reshape %r {newshape = [1 : i64]} : (tensor<i64>) -> tensor<1xi64>
  %y = "graph.dyn"(%x, %n) <{op = "reshape", attrs = {}, bind = ["newshape"], forms = ["list"]}> : (tensor<?x4xf32>, tensor<1xi64>) -> tensor<?xf32>
  %z = "graph.if"(%c) ({
    %0 = graph.nn.relu %y : (tensor<?xf32>) -> tensor<?xf32>
    "graph.yield"(%0) : (tensor<?xf32>) -> ()
  }, {
    "graph.yield"(%y) : (tensor<?xf32>) -> ()
  }) : (tensor<i1>) -> tensor<?xf32>
  func.return %z : tensor<?xf32>
}

// -----
// A reduction over axes given as a constant: the static sum, its result static.
// CHECK-LABEL: func.func @axes(%x: tensor<2x3x4xf32>) -> tensor<2x4xf32> {
// CHECK-NEXT:    %{{.*}} = graph.sum %x {axis = [1 : i64]} : (tensor<2x3x4xf32>) -> tensor<2x4xf32>
func.func @axes(%x: tensor<2x3x4xf32>) -> tensor<?x?xf32> {
  %a = graph.constant {value = dense<[1]> : tensor<1xi64>} : tensor<1xi64>
  %y = "graph.dyn"(%x, %a) <{op = "sum", attrs = {}, bind = ["axis"], forms = ["list_or_all"]}> : (tensor<2x3x4xf32>, tensor<1xi64>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}
