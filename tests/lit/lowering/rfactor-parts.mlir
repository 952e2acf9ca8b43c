// RUN: lathe-opt %s -p lower-te-to-loop | filecheck %s

// rfactor by parts, the partials' axis first: partial p sums the contiguous run
// k = 4p .. 4p + 3 (k = 4·ko + ki, no overhang: 8 = 2·4) into the [2, 7] buffer, the parts'
// loop is parallel, and the final sum reads both rows of it.
// CHECK-LABEL: func.func private @rowsum
// CHECK:         %[[RF:.*]] = memref.alloc() {alignment = 64 : i64} : memref<2x7xf32>
// CHECK:         scf.for %k_outer =
// CHECK:           scf.for %i =
// CHECK:             scf.for %k_inner =
// CHECK-NOT:           arith.select
// CHECK:               memref.store %{{.*}}, %[[RF]][%k_outer, %i] : memref<2x7xf32>
// CHECK:         } {loop.annotation = #loop.annotation<parallel>}
// CHECK:         scf.for %i_1 =
// CHECK:           scf.for %k_outer_1 =
// CHECK:             memref.load %[[RF]][%k_outer_1, %i_1] : memref<2x7xf32>
// CHECK:         memref.dealloc %[[RF]]
func.func private @rowsum(%a: tensor<7x8xf32>) -> tensor<7xf32> attributes {lathe.kernel} {
  %0 = te.compute {stage = "row_sum", axes = ["i", "k"], reduce_extents = [8], combiner = "sum"} : tensor<7xf32> {
  ^bb0(%i: index, %k: index):
    %1 = te.read %a[%i, %k] : tensor<7x8xf32> -> f32
    te.yield %1 : f32
  }
  %rf = te.rfactor %0 {axis = "k", nparts = 2 : i64, factor_axis = 0 : i64} : tensor<7xf32> -> tensor<2x7xf32>
  te.parallel %rf {axis = "k.outer"} : tensor<2x7xf32>
  func.return %0 : tensor<7xf32>
}
