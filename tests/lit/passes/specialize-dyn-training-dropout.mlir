// RUN: not lathe-opt %s -p specialize-control-flow --emit=mlir 2>&1 | filecheck %s

// Known to be on with a rate above 0: the random drop Lathe does not do, refused at compile time.
// CHECK: graph.dyn nn.dropout with training=True: nn.dropout: training with rate 0.5 drops at random
func.func @dropout_training(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  %t = graph.constant {value = dense<true> : tensor<i1>} : tensor<i1>
  %d = "graph.dyn"(%x, %t) <{op = "nn.dropout", attrs = {rate = 5.000000e-01 : f64}, bind = ["training"], forms = ["flag"]}> : (tensor<3x4xf32>, tensor<i1>) -> tuple<tensor<3x4xf32>, tensor<3x4xf32>>
  %y = graph.tuple_get_item %d {index = 0 : i64} : (tuple<tensor<3x4xf32>, tensor<3x4xf32>>) -> tensor<3x4xf32>
  func.return %y : tensor<3x4xf32>
}
