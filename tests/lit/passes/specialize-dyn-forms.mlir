// RUN: lathe-opt %s --split-input-file -p specialize-control-flow --emit=mlir | filecheck %s

// ONNX Unsqueeze's run-time axes (any order, negative from the result's end) read as a
// reshape's newshape: known at compile time, the graph.dyn folds to the static reshape.
// CHECK-LABEL: func.func @unsqueeze(%x: tensor<3x4xf32>) -> tensor<1x3x4x1xf32> {
// CHECK-NEXT:    %{{.*}} = graph.reshape %x {newshape = [1 : i64, 3 : i64, 4 : i64, 1 : i64]} : (tensor<3x4xf32>) -> tensor<1x3x4x1xf32>
// CHECK-NEXT:    func.return
func.func @unsqueeze(%x: tensor<3x4xf32>) -> tensor<?x?x?x?xf32> {
  %axes = graph.constant {value = dense<[-1, 0]> : tensor<2xi64>} : tensor<2xi64>
  %y = "graph.dyn"(%x, %axes) <{op = "reshape", attrs = {}, bind = ["newshape"], forms = ["unsqueeze"]}> : (tensor<3x4xf32>, tensor<2xi64>) -> tensor<?x?x?x?xf32>
  func.return %y : tensor<?x?x?x?xf32>
}

// -----
// A form that reads the data's shape (Expand's broadcast) over a ? operand: with the values
// constant the attribute still waits for the run, so the graph.dyn stays (no error: the
// shapes it needs are not known yet).
// CHECK-LABEL: func.func @broadcast_of_unknown
// CHECK:         "graph.dyn"(%m, %s) <{op = "broadcast_to", {{.*}}forms = ["broadcast"]}>
func.func @broadcast_of_unknown(%m: tensor<?x?xf32>) -> tensor<3x4xf32> {
  %s = graph.constant {value = dense<[3, 4]> : tensor<2xi64>} : tensor<2xi64>
  %y = "graph.dyn"(%m, %s) <{op = "broadcast_to", attrs = {}, bind = ["shape"], forms = ["broadcast"]}> : (tensor<?x?xf32>, tensor<2xi64>) -> tensor<3x4xf32>
  func.return %y : tensor<3x4xf32>
}

// -----
// ONNX Dropout's training_mode read as a flag (from a bool tensor): known, the graph.dyn folds
// to nn.dropout with its training property (on with a rate of 0 keeps everything).
// CHECK-LABEL: func.func @dropout_training_at_rate_0
// CHECK:         graph.nn.dropout %x {rate = 0.000000e+00 : f64, training = true}
// CHECK-NOT:     graph.dyn
func.func @dropout_training_at_rate_0(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  %t = graph.constant {value = dense<true> : tensor<i1>} : tensor<i1>
  %d = "graph.dyn"(%x, %t) <{op = "nn.dropout", attrs = {rate = 0.000000e+00 : f64}, bind = ["training"], forms = ["flag"]}> : (tensor<3x4xf32>, tensor<i1>) -> tuple<tensor<3x4xf32>, tensor<3x4xf32>>
  %y = graph.tuple_get_item %d {index = 0 : i64} : (tuple<tensor<3x4xf32>, tensor<3x4xf32>>) -> tensor<3x4xf32>
  func.return %y : tensor<3x4xf32>
}
