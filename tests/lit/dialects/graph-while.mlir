// RUN: lathe-opt %s --emit=mlir | filecheck %s
// RUN: lathe-opt %s --emit=mlir | lathe-opt --emit=mlir | filecheck %s
// RUN: not lathe-opt %s -p fuse-ops 2>&1 | filecheck %s --check-prefix=PASS

// ONNX's Loop as graph.while: carried (i, acc), run while i < n; the body's acc grows, so it is
// carried as ?x3, and each iteration's i is scanned into a stack of ? length.
func.func @main(%n: tensor<i64>, %a: tensor<1x3xf32>) -> tuple<tensor<?x3xf32>, tensor<?xi64>> {
  %0 = graph.constant {value = dense<0> : tensor<i64>} : tensor<i64>
  %1, %2, %3 = "graph.while"(%0, %a) ({
  ^bb0(%i: tensor<i64>, %acc: tensor<?x3xf32>):
    %4 = graph.less %i, %n : (tensor<i64>, tensor<i64>) -> tensor<i1>
    "graph.yield"(%4) : (tensor<i1>) -> ()
  }, {
  ^bb0(%i: tensor<i64>, %acc: tensor<?x3xf32>):
    %5 = graph.tuple %acc, %a : (tensor<?x3xf32>, tensor<1x3xf32>) -> tuple<tensor<?x3xf32>, tensor<1x3xf32>>
    %6 = graph.concatenate %5 : (tuple<tensor<?x3xf32>, tensor<1x3xf32>>) -> tensor<?x3xf32>
    %7 = graph.constant {value = dense<1> : tensor<i64>} : tensor<i64>
    %8 = graph.add %i, %7 : (tensor<i64>, tensor<i64>) -> tensor<i64>
    "graph.yield"(%8, %6, %i) : (tensor<i64>, tensor<?x3xf32>, tensor<i64>) -> ()
  }) : (tensor<i64>, tensor<1x3xf32>) -> (tensor<i64>, tensor<?x3xf32>, tensor<?xi64>)
  %9 = graph.tuple %2, %3 : (tensor<?x3xf32>, tensor<?xi64>) -> tuple<tensor<?x3xf32>, tensor<?xi64>>
  func.return %9 : tuple<tensor<?x3xf32>, tensor<?xi64>>
}

// CHECK:      %{{.*}}, %{{.*}}, %{{.*}} = "graph.while"(%{{.*}}, %a) ({
// CHECK-NEXT: ^{{.*}}(%i: tensor<i64>, %acc: tensor<?x3xf32>):
// CHECK-NEXT:   graph.less %i, %n
// CHECK:      "graph.yield"(%{{.*}}, %{{.*}}, %i{{.*}}) : (tensor<i64>, tensor<?x3xf32>, tensor<i64>) -> ()
// CHECK-NEXT: }) : (tensor<i64>, tensor<1x3xf32>) -> (tensor<i64>, tensor<?x3xf32>, tensor<?xi64>)

// PASS: pass 'fuse-ops' cannot run on 'graph.while': it has control flow or a function value
